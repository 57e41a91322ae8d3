"""The ``App`` kind: what runs on edge nodes, and how (DESIGN.md §2).

Validates the spec strictly (unknown fields are errors, so typos are caught) and leaves
``status`` free-form: controllers and agents own it. Commands are argv lists, never shell
strings. This module must not schedule, start or download anything.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edgeweave.models.base import (
    Argv,
    NonNegativeInt,
    Port,
    PositiveInt,
    Resource,
    StrictModel,
    check_env,
    check_object_name,
    duplicates,
    exactly_one,
    raise_problems,
)
from edgeweave.models.formats import DIGEST_RE
from edgeweave.models.meta import check_labels
from edgeweave.models.quantities import parse_cpu_millis, parse_memory_bytes

PORT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RestartPolicy = Literal["Always", "OnFailure", "Never"]
Protocol = Literal["TCP", "UDP"]


def check_port_name(name: str) -> str:
    if not PORT_NAME_RE.match(name):
        raise ValueError(
            f"port name {name!r} is invalid: lowercase letters, digits and '-', "
            "starting and ending alphanumeric"
        )
    return name


def _check_relative_path(path: str, what: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or "" in parts:
        raise ValueError(
            f"{what} {path!r} must be a relative path such as 'model.bin' or 'lib/util.py' "
            "(no leading '/', no '..', no empty segments)"
        )
    return path


class Artifact(StrictModel):
    name: str
    digest: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_relative_path(v, "artifact name")

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if not DIGEST_RE.match(v):
            raise ValueError(
                f"digest {v!r} must be 'sha256:' followed by 64 lowercase hex digits; "
                "`edgeweave artifact push FILE` prints it"
            )
        return v


class Lifecycle(StrictModel):
    install: Argv | None = None
    run: Argv


class ObjectRef(StrictModel):
    """A ConfigMap or Secret the app uses: mounted as files and/or exported as env vars."""

    name: str
    mountPath: str | None = None
    envPrefix: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_object_name(v)

    @field_validator("mountPath")
    @classmethod
    def _mount_path(cls, v: str | None) -> str | None:
        if v is not None and (not v or ".." in v.split("/")):
            raise ValueError(f"mountPath {v!r} must be a non-empty path without '..'")
        return v

    @field_validator("envPrefix")
    @classmethod
    def _env_prefix(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError(f"envPrefix {v!r} must be letters, digits and '_'")
        return v


class AppPort(StrictModel):
    name: str
    port: Port
    protocol: Protocol = "TCP"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_port_name(v)


def _check_probe_port(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    if isinstance(value, str) and PORT_NAME_RE.match(value):
        return value
    raise ValueError(f"port {value!r} must be a number 1..65535 or the name of one of spec.ports")


# a probe's port: a number or the name of one of the app's ports
ProbePort = Annotated[Any, AfterValidator(_check_probe_port)]


class HTTPProbe(StrictModel):
    port: ProbePort
    path: str = "/"

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"path {v!r} must start with '/'")
        return v


class TCPProbe(StrictModel):
    port: ProbePort


class ExecProbe(StrictModel):
    command: Argv


class HealthCheck(StrictModel):
    http: HTTPProbe | None = None
    tcp: TCPProbe | None = None
    exec: ExecProbe | None = None
    periodSeconds: PositiveInt | None = None
    timeoutSeconds: PositiveInt | None = None
    failureThreshold: PositiveInt | None = None
    initialDelaySeconds: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheck:
        raise_problems(exactly_one(self, ("http", "tcp", "exec")))
        return self

    def probe_port(self) -> int | str | None:
        probe = self.http or self.tcp
        return probe.port if probe is not None else None


class Limits(StrictModel):
    memoryBytes: PositiveInt | None = None
    memory: str | None = None
    cpu: Any = None
    openFiles: PositiveInt | None = None
    processes: PositiveInt | None = None

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None:
            parse_memory_bytes(v)
        return v

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: Any) -> Any:
        if v is not None:
            parse_cpu_millis(v)
        return v

    @model_validator(mode="after")
    def _one_memory(self) -> Limits:
        if self.memory is not None and self.memoryBytes is not None:
            raise_problems([("memory", "set memory or memoryBytes, not both")])
        return self

    def memory_limit_bytes(self) -> int | None:
        if self.memoryBytes is not None:
            return self.memoryBytes
        return parse_memory_bytes(self.memory) if self.memory is not None else None

    def cpu_millis(self) -> int | None:
        return parse_cpu_millis(self.cpu) if self.cpu is not None else None


class Resources(StrictModel):
    limits: Limits | None = None


class AppSpec(StrictModel):
    """Selection: ``nodeSelector`` (labels), ``nodeNames``, both (a node must match both) or
    neither (the app is stored but placed nowhere)."""

    nodeSelector: dict[str, str] | None = None
    nodeNames: list[str] | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    lifecycle: Lifecycle
    env: dict[str, str] = Field(default_factory=dict)
    configRefs: list[ObjectRef] = Field(default_factory=list)
    secretRefs: list[ObjectRef] = Field(default_factory=list)
    restartPolicy: RestartPolicy = "Always"
    ports: list[AppPort] = Field(default_factory=list)
    healthCheck: HealthCheck | None = None
    resources: Resources | None = None

    @field_validator("nodeSelector")
    @classmethod
    def _selector(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_labels(v) if v is not None else None

    @field_validator("nodeNames")
    @classmethod
    def _node_names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or ():
            check_object_name(name, "node name")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return check_env(v)

    @model_validator(mode="after")
    def _cross_fields(self) -> AppSpec:
        problems: list[tuple[str, str]] = []
        for i in duplicates([a.name for a in self.artifacts]):
            problems.append((f"artifacts[{i}].name", "duplicate artifact name"))
        for field, refs in (("configRefs", self.configRefs), ("secretRefs", self.secretRefs)):
            for i in duplicates([r.name for r in refs]):
                problems.append((f"{field}[{i}].name", "listed twice"))
        for i in duplicates([p.name for p in self.ports]):
            problems.append((f"ports[{i}].name", "duplicate port name"))
        for i in duplicates([f"{p.port}/{p.protocol}" for p in self.ports]):
            problems.append((f"ports[{i}].port", "the same port and protocol appear twice"))
        for i in duplicates(self.nodeNames or []):
            problems.append((f"nodeNames[{i}]", "listed twice"))
        port = self.healthCheck.probe_port() if self.healthCheck else None
        if isinstance(port, str) and port not in {p.name for p in self.ports}:
            probe = "http" if self.healthCheck and self.healthCheck.http else "tcp"
            problems.append((f"healthCheck.{probe}.port", f"no port named {port!r} in spec.ports"))
        raise_problems(problems)
        return self


class App(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["App"]
    spec: AppSpec
    status: dict[str, Any] | None = None
