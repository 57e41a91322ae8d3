"""The desired state of one app instance, resolved from the objects the agent holds.

Reads the App (with :mod:`.spec`, a light reader: the cloud validated the object), looks up
the ConfigMaps and Secrets it references (same namespace) and computes the **spec hash**: a
digest of the spec, the referenced config/secret contents and thus the artifact digests. The
runtime restarts a process only when this hash changes, so re-applying the same desired set
leaves everything alone.

Pure: no files, no processes. Secret values never appear in messages or in the hash input
(only their sha256 does).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeweave.edge.runtime.spec import (
    DEFAULT_NAMESPACE,
    AppSpec,
    SpecError,
    check_app_object,
    config_files,
)

AppKey = tuple[str, str]  # (namespace, name)
ObjectLike = Mapping[str, Any]


@dataclass(frozen=True)
class DesiredApp:
    namespace: str
    name: str
    generation: int | None
    spec: AppSpec | None
    spec_hash: str
    # why it cannot run as it is (invalid object, missing reference); "" when it can
    problem: str = ""
    configs: dict[str, dict[str, bytes]] = field(default_factory=dict)
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @property
    def key(self) -> AppKey:
        return (self.namespace, self.name)


def _as_dict(obj: Any) -> dict[str, Any]:
    dump = getattr(obj, "model_dump", None)  # a kind model (tests, tools); no import of them
    if dump is not None:
        return dict(dump(mode="json", exclude_none=True))
    return dict(obj)


def _key_of(obj: Mapping[str, Any]) -> AppKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or DEFAULT_NAMESPACE, str(meta.get("name", "")))


def _files(kind: str, objects: Sequence[Any]) -> dict[AppKey, dict[str, bytes]]:
    out: dict[AppKey, dict[str, bytes]] = {}
    for raw in objects:
        obj = _as_dict(raw)
        try:
            files = config_files(kind, obj)
        except SpecError:
            continue  # an invalid object is reported as "not found" by the apps using it
        out[_key_of(obj)] = files
    return out


def _hash(spec: Mapping[str, Any], refs: Mapping[str, Any]) -> str:
    text = json.dumps({"spec": spec, "refs": refs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _digests(files: Mapping[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}


def resolve(
    apps: Sequence[Any], configmaps: Sequence[Any], secrets: Sequence[Any]
) -> dict[AppKey, DesiredApp]:
    """Each App (model or plain dict) as a :class:`DesiredApp`, keyed by (namespace, name)."""
    cm_files = _files("ConfigMap", configmaps)
    secret_files = _files("Secret", secrets)
    out: dict[AppKey, DesiredApp] = {}
    for raw in apps:
        obj = _as_dict(raw)
        ns, name = _key_of(obj)
        generation = (obj.get("metadata") or {}).get("generation")
        try:
            check_app_object(obj)
            spec = AppSpec.read(obj.get("spec"))
        except SpecError as e:
            problem = f"App {ns}/{name} is invalid: {e}"
            spec_hash = _hash({"invalid": obj.get("spec")}, {})
            out[(ns, name)] = DesiredApp(ns, name, generation, None, spec_hash, problem)
            continue
        missing: list[str] = []
        configs: dict[str, dict[str, bytes]] = {}
        secret_map: dict[str, dict[str, bytes]] = {}
        for kind, refs, pool, into in (
            ("ConfigMap", spec.configRefs, cm_files, configs),
            ("Secret", spec.secretRefs, secret_files, secret_map),
        ):
            for ref in refs:
                found = pool.get((ns, ref.name))
                if found is None:
                    missing.append(f"{kind} {ns}/{ref.name}")
                else:
                    into[ref.name] = found
        refs_digest = {
            "configs": {k: _digests(v) for k, v in configs.items()},
            "secrets": {k: _digests(v) for k, v in secret_map.items()},
            "missing": missing,
        }
        spec_hash = _hash(spec.to_json(), refs_digest)
        problem = f"waiting for {', '.join(missing)} (not on this node yet)" if missing else ""
        out[(ns, name)] = DesiredApp(
            ns, name, generation, spec, spec_hash, problem, configs, secret_map
        )
    return out
