"""The registry of every kind, and whole-object validation.

:func:`validate` is what the API (and ``edgeweave apply`` before sending) runs on a manifest:
it checks the envelope, validates with the kind's model and returns a plain JSON dict that
keeps what the user wrote (no defaults injected), with the namespace settled. Failures raise
:class:`~edgeweave.errors.InvalidObject` naming every bad field.

Only constant tuples are built at import time; this module does no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeweave.errors import InvalidObject, UnknownKind
from edgeweave.models.apps import App
from edgeweave.models.columns import DESIRED_REPORTED
from edgeweave.models.configs import ConfigMap, Secret
from edgeweave.models.devices import Device, DeviceModel
from edgeweave.models.endpoints import Endpoints
from edgeweave.models.kinds import KindInfo
from edgeweave.models.meta import DEFAULT_NAMESPACE, Envelope
from edgeweave.models.nodes import Node
from edgeweave.models.pipelines import Pipeline, Repo
from edgeweave.models.services import Service
from edgeweave.models.validation import invalid_object
from edgeweave.models.workflows import Workflow, WorkflowRun

GROUP = "edgeweave.io"
VERSION = "v1"
DEVICES_GROUP = "devices.kubeedge.io"
DEVICES_VERSION = "v1beta1"
AGE = ("AGE", "metadata.creationTimestamp")

_KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="Node",
        group=GROUP,
        version=VERSION,
        plural="nodes",
        singular="node",
        short_names=("no",),
        namespaced=False,
        model=Node,
        columns=(("STATUS", "status.phase"), ("VERSION", "status.agentVersion"), AGE),
        wide_columns=(
            ("ADDRESSES", "status.addresses[*].address"),
            ("HEARTBEAT", "status.lastHeartbeat"),
            ("UNSCHEDULABLE", "spec.unschedulable"),
            ("OWNER", "status.connectionOwner"),
        ),
    ),
    KindInfo(
        kind="App",
        group=GROUP,
        version=VERSION,
        plural="apps",
        singular="app",
        model=App,
        columns=(
            ("SELECTOR", "spec.nodeSelector"),
            ("NODES", "status.nodes[@]"),
            ("PHASE", "status.nodes[*].phase"),
            AGE,
        ),
        wide_columns=(
            ("READY", "status.nodes[*].ready"),
            ("RESTARTS", "status.nodes[*].restarts"),
            ("RESTART", "spec.restartPolicy"),
            ("PORTS", "spec.ports[*].port"),
            ("RUN", "spec.lifecycle.run"),
        ),
    ),
    KindInfo(
        kind="Service",
        group=GROUP,
        version=VERSION,
        plural="services",
        singular="service",
        short_names=("svc",),
        model=Service,
        columns=(
            ("SELECTOR", "spec.selector"),
            ("PORTS", "spec.ports[*].port"),
            ("BALANCING", "spec.loadBalancing"),
            AGE,
        ),
        wide_columns=(
            ("TARGETS", "spec.ports[*].targetPort"),
            ("AFFINITY", "spec.sessionAffinity"),
        ),
    ),
    KindInfo(
        kind="Endpoints",
        group=GROUP,
        version=VERSION,
        plural="endpoints",
        singular="endpoints",
        short_names=("ep",),
        model=Endpoints,
        columns=(
            ("ENDPOINTS", "endpoints[*].address"),
            ("NODES", "endpoints[*].node"),
            ("READY", "endpoints[*].ready"),
            AGE,
        ),
        wide_columns=(("PATHS", "status.paths"),),
        extra_fields=("endpoints",),
        read_only=True,
    ),
    KindInfo(
        kind="ConfigMap",
        group=GROUP,
        version=VERSION,
        plural="configmaps",
        singular="configmap",
        short_names=("cm",),
        model=ConfigMap,
        columns=(AGE,),
        extra_fields=("data", "binaryData", "immutable"),
    ),
    KindInfo(
        kind="Secret",
        group=GROUP,
        version=VERSION,
        plural="secrets",
        singular="secret",
        model=Secret,
        columns=(("TYPE", "type"), AGE),
        extra_fields=("type", "data", "stringData", "immutable"),
    ),
    KindInfo(
        kind="DeviceModel",
        group=DEVICES_GROUP,
        version=DEVICES_VERSION,
        plural="devicemodels",
        singular="devicemodel",
        short_names=("dm",),
        model=DeviceModel,
        columns=(("PROTOCOL", "spec.protocol"), ("PROPERTIES", "spec.properties[*].name"), AGE),
        wide_columns=(
            ("TYPES", "spec.properties[*].type"),
            ("ACCESS", "spec.properties[*].accessMode"),
        ),
    ),
    KindInfo(
        kind="Device",
        group=DEVICES_GROUP,
        version=DEVICES_VERSION,
        plural="devices",
        singular="device",
        short_names=("dev",),
        model=Device,
        columns=(
            ("MODEL", "spec.deviceModelRef.name"),
            ("NODE", "spec.nodeName"),
            ("STATE", "status.state"),
            AGE,
        ),
        wide_columns=(
            ("PROTOCOL", "spec.protocol.protocolName"),
            ("DESIRED/REPORTED", DESIRED_REPORTED),
        ),
    ),
    KindInfo(
        kind="Repo",
        group=GROUP,
        version=VERSION,
        plural="repos",
        singular="repo",
        model=Repo,
        columns=(("LOCATION", "spec.location"), ("DESCRIPTION", "spec.description"), AGE),
        wide_columns=(("BRANCHES", "spec.branches"),),
    ),
    KindInfo(
        kind="Pipeline",
        group=GROUP,
        version=VERSION,
        plural="pipelines",
        singular="pipeline",
        short_names=("pp",),
        model=Pipeline,
        columns=(("PLACEMENT", "spec.placement"), ("STATE", "status.state"), AGE),
        wide_columns=(
            ("CMD", "spec.transform.cmd"),
            ("PATTERN", "spec.pattern"),
            ("DESCRIPTION", "spec.description"),
        ),
    ),
    KindInfo(
        kind="Workflow",
        group=GROUP,
        version=VERSION,
        plural="workflows",
        singular="workflow",
        short_names=("wf",),
        model=Workflow,
        columns=(
            ("STEPS", "spec.steps[*].name"),
            ("SCHEDULE", "spec.schedule"),
            ("LAST RUN", "status.lastRun"),
            ("STATE", "status.lastRunState"),
            AGE,
        ),
        wide_columns=(("PARAMS", "spec.params"),),
    ),
    KindInfo(
        kind="WorkflowRun",
        group=GROUP,
        version=VERSION,
        plural="workflowruns",
        singular="workflowrun",
        short_names=("wfr",),
        model=WorkflowRun,
        columns=(
            ("WORKFLOW", "spec.workflow"),
            ("TRIGGER", "spec.trigger"),
            ("STATE", "status.state"),
            AGE,
        ),
        wide_columns=(("PARAMS", "spec.params"), ("MESSAGE", "status.message")),
        read_only=True,
    ),
)


def all_kinds() -> tuple[KindInfo, ...]:
    return _KINDS


def _known() -> str:
    return ", ".join(f"{k.kind} ({'/'.join(k.names()[1:])})" for k in _KINDS)


def lookup(name: str) -> KindInfo:
    """The kind a user typed: kind, plural, singular or short name, any case; also
    ``plural.group`` (``devices.devices.kubeedge.io``). Raises :class:`UnknownKind`."""
    wanted = name.strip().lower()
    group = None
    if "." in wanted:
        wanted, group = wanted.split(".", 1)
    for info in _KINDS:
        if wanted in info.names() and (group is None or group == info.group):
            return info
    raise UnknownKind(f"unknown kind {name!r}; known kinds: {_known()}", field="kind")


def by_plural(group: str, version: str, plural: str) -> KindInfo:
    """The kind served at ``/apis/{group}/{version}/.../{plural}``; raises UnknownKind."""
    for info in _KINDS:
        if (info.group, info.version, info.plural) == (group, version, plural):
            return info
    raise UnknownKind(
        f"no resource {plural!r} in {group}/{version}; served: "
        + ", ".join(f"{k.api_version} {k.plural}" for k in _KINDS)
    )


def by_api_version_kind(api_version: str, kind: str) -> KindInfo:
    """The kind a manifest names. A known kind under the wrong apiVersion raises
    :class:`InvalidObject` on ``apiVersion``; an unknown kind raises :class:`UnknownKind`."""
    for info in _KINDS:
        if info.kind == kind:
            if info.api_version != api_version:
                raise InvalidObject(
                    f"{kind} belongs to apiVersion {info.api_version}, not {api_version!r}; "
                    f"set apiVersion: {info.api_version}",
                    field="apiVersion",
                )
            return info
    hint = ""
    for info in _KINDS:
        if kind.lower() in info.names():
            hint = f" (did you mean {info.kind}? kind is case-sensitive)"
    raise UnknownKind(
        f"unknown kind {kind!r}{hint}; known kinds: {', '.join(k.kind for k in _KINDS)}",
        field="kind",
    )


def _describe(kind: str, meta: dict[str, Any], namespaced: bool) -> str:
    name = meta.get("name", "<no name>")
    return f"{kind} {meta.get('namespace')}/{name}" if namespaced else f"{kind} {name}"


def validate(obj: dict[str, Any], *, default_namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """Validate a whole object; returns it as a plain JSON dict (a copy).

    Namespaced kinds get ``default_namespace`` when the object names none; cluster-scoped
    kinds lose any namespace. Raises :class:`InvalidObject` / :class:`UnknownKind`.
    """
    if not isinstance(obj, dict):
        raise InvalidObject("an object must be a mapping with apiVersion, kind and metadata")
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise InvalidObject(
                f"{field} is missing; every object starts with apiVersion and kind "
                "(e.g. apiVersion: edgeweave.io/v1, kind: App)",
                field=field,
            )
    info = by_api_version_kind(obj["apiVersion"], obj["kind"])
    data = copy.deepcopy(obj)
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        raise InvalidObject(
            f"{info.kind}: metadata is missing; give at least metadata.name", field="metadata"
        )
    if info.namespaced:
        if not meta.get("namespace"):
            meta["namespace"] = default_namespace
    else:
        meta.pop("namespace", None)
    model: type[BaseModel] = info.model or Envelope
    try:
        checked = model.model_validate(data)
    except ValidationError as e:
        raise invalid_object(e, _describe(info.kind, meta, info.namespaced)) from None
    return checked.model_dump(mode="json", exclude_unset=True, by_alias=True)
