"""A light reader of the App spec (and ConfigMap/Secret files) for the runtime.

The cloud validated every object against the full ``edgeweave.models`` kinds before it was
sent to the node; the agent does not load those models (they pull in a validation library
and every other kind). This module reads the fields the runtime uses into small frozen
dataclasses and still refuses what could make the runtime misbehave — a shell string for a
command, a bad digest, an artifact path leaving the app directory, a port out of range, a
named probe port that does not exist — with :class:`SpecError` naming the field, so the app
is reported as Failed instead of crashing anything. Unknown fields are ignored.

:meth:`AppSpec.to_json` gives the same plain JSON as the ``models.apps.AppSpec`` model dump
(every field, defaults included): the spec hash computed from it must not change when the
agent is upgraded, or adopted apps would restart.

Pure: no files, no processes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from edgeweave.models.formats import DIGEST_RE
from edgeweave.models.quantities import parse_cpu_millis, parse_memory_bytes

RestartPolicy = Literal["Always", "OnFailure", "Never"]
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PROTOCOLS = ("TCP", "UDP")
DEFAULT_NAMESPACE = "default"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_PORT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_FILE_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]{1,253}\Z")

T = TypeVar("T")


class SpecError(ValueError):
    """A field the runtime cannot use; ``path`` is relative to the object (``spec.ports[0]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


# ---------------------------------------------------------------- field readers


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path, "must be an object")
    return value


def _opt_obj(value: Any, path: str) -> dict[str, Any] | None:
    return None if value is None else _obj(value, path)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError(path, "must be a string")
    return value


def _opt_str(value: Any, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _int(value: Any, path: str, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(path, "must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise SpecError(path, f"must be {bound}")
    return value


def _opt_int(value: Any, path: str, low: int) -> int | None:
    return None if value is None else _int(value, path, low)


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    return value


def _items(value: Any, path: str, read: Callable[[Any, str], T]) -> tuple[T, ...]:
    if value is None:
        return ()
    return tuple(read(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path)))


def _str_map(value: Any, path: str, key_re: re.Pattern[str] | None = None) -> dict[str, str]:
    if value is None:
        return {}
    out: dict[str, str] = {}
    for k, v in _obj(value, path).items():
        if key_re is not None and not key_re.match(k):
            raise SpecError(f"{path}.{k}", "is not a valid key")
        out[k] = _str(v, f"{path}.{k}")
    return out


def _argv(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise SpecError(path, "must be an argv list, not a shell string")
    argv = tuple(_str(x, f"{path}[{i}]") for i, x in enumerate(_list(value, path)))
    if not argv or not argv[0]:
        raise SpecError(path, "must name the program to run")
    return argv


def _relative(value: Any, path: str) -> str:
    text = _str(value, path)
    parts = text.split("/")
    if not text or text.startswith("/") or ".." in parts or "" in parts:
        raise SpecError(path, f"{text!r} must be a relative path without '..'")
    return text


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Artifact:
    name: str
    digest: str

    @classmethod
    def read(cls, raw: Any, path: str) -> Artifact:
        d = _obj(raw, path)
        digest = _str(d.get("digest"), f"{path}.digest")
        if not DIGEST_RE.match(digest):
            raise SpecError(f"{path}.digest", f"{digest!r} is not sha256:<64 hex>")
        return cls(_relative(d.get("name"), f"{path}.name"), digest)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "digest": self.digest}


@dataclass(frozen=True)
class Lifecycle:
    run: list[str]
    install: list[str] | None = None

    @classmethod
    def read(cls, raw: Any, path: str) -> Lifecycle:
        d = _obj(raw, path)
        install = d.get("install")
        return cls(
            run=list(_argv(d.get("run"), f"{path}.run")),
            install=None if install is None else list(_argv(install, f"{path}.install")),
        )

    def to_json(self) -> dict[str, Any]:
        return {"install": self.install, "run": self.run}


@dataclass(frozen=True)
class ObjectRef:
    """A ConfigMap or Secret the app uses: mounted as files and/or exported as env vars."""

    name: str
    mountPath: str | None = None
    envPrefix: str | None = None

    @classmethod
    def read(cls, raw: Any, path: str) -> ObjectRef:
        d = _obj(raw, path)
        name = _str(d.get("name"), f"{path}.name")
        if not _NAME_RE.match(name):
            raise SpecError(f"{path}.name", f"{name!r} is not a valid object name")
        mount = _opt_str(d.get("mountPath"), f"{path}.mountPath")
        if mount is not None and (not mount or ".." in mount.split("/")):
            raise SpecError(f"{path}.mountPath", "must be a non-empty path without '..'")
        prefix = _opt_str(d.get("envPrefix"), f"{path}.envPrefix")
        if prefix is not None and not _ENV_NAME_RE.match(prefix):
            raise SpecError(f"{path}.envPrefix", "must be letters, digits and '_'")
        return cls(name, mount, prefix)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mountPath": self.mountPath, "envPrefix": self.envPrefix}


@dataclass(frozen=True)
class AppPort:
    name: str
    port: int
    protocol: str = "TCP"

    @classmethod
    def read(cls, raw: Any, path: str) -> AppPort:
        d = _obj(raw, path)
        name = _str(d.get("name"), f"{path}.name")
        if not _PORT_NAME_RE.match(name):
            raise SpecError(f"{path}.name", f"port name {name!r} is invalid")
        protocol = d.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            raise SpecError(f"{path}.protocol", "must be TCP or UDP")
        return cls(name, _int(d.get("port"), f"{path}.port", 1, 65535), protocol)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "protocol": self.protocol}


def _probe_port(value: Any, path: str) -> int | str:
    if isinstance(value, str) and _PORT_NAME_RE.match(value):
        return value
    return _int(value, path, 1, 65535)


@dataclass(frozen=True)
class HTTPProbe:
    port: int | str
    path: str = "/"

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "path": self.path}


@dataclass(frozen=True)
class TCPProbe:
    port: int | str

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port}


@dataclass(frozen=True)
class ExecProbe:
    command: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command}


@dataclass(frozen=True)
class HealthCheck:
    http: HTTPProbe | None = None
    tcp: TCPProbe | None = None
    exec: ExecProbe | None = None
    periodSeconds: int | None = None
    timeoutSeconds: int | None = None
    failureThreshold: int | None = None
    initialDelaySeconds: int | None = None

    @classmethod
    def read(cls, raw: Any, path: str) -> HealthCheck:
        d = _obj(raw, path)
        http = _opt_obj(d.get("http"), f"{path}.http")
        tcp = _opt_obj(d.get("tcp"), f"{path}.tcp")
        exe = _opt_obj(d.get("exec"), f"{path}.exec")
        if sum(x is not None for x in (http, tcp, exe)) != 1:
            raise SpecError(path, "set exactly one of http, tcp, exec")
        http_probe = tcp_probe = exec_probe = None
        if http is not None:
            probe_path = _str(http.get("path", "/"), f"{path}.http.path")
            if not probe_path.startswith("/"):
                raise SpecError(f"{path}.http.path", "must start with '/'")
            http_probe = HTTPProbe(_probe_port(http.get("port"), f"{path}.http.port"), probe_path)
        if tcp is not None:
            tcp_probe = TCPProbe(_probe_port(tcp.get("port"), f"{path}.tcp.port"))
        if exe is not None:
            exec_probe = ExecProbe(list(_argv(exe.get("command"), f"{path}.exec.command")))
        return cls(
            http_probe,
            tcp_probe,
            exec_probe,
            _opt_int(d.get("periodSeconds"), f"{path}.periodSeconds", 1),
            _opt_int(d.get("timeoutSeconds"), f"{path}.timeoutSeconds", 1),
            _opt_int(d.get("failureThreshold"), f"{path}.failureThreshold", 1),
            _opt_int(d.get("initialDelaySeconds"), f"{path}.initialDelaySeconds", 0),
        )

    def probe_port(self) -> int | str | None:
        probe = self.http or self.tcp
        return probe.port if probe is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "http": self.http.to_json() if self.http else None,
            "tcp": self.tcp.to_json() if self.tcp else None,
            "exec": self.exec.to_json() if self.exec else None,
            "periodSeconds": self.periodSeconds,
            "timeoutSeconds": self.timeoutSeconds,
            "failureThreshold": self.failureThreshold,
            "initialDelaySeconds": self.initialDelaySeconds,
        }


@dataclass(frozen=True)
class Limits:
    memoryBytes: int | None = None
    memory: str | None = None
    cpu: Any = None
    openFiles: int | None = None
    processes: int | None = None

    @classmethod
    def read(cls, raw: Any, path: str) -> Limits:
        d = _obj(raw, path)
        memory = _opt_str(d.get("memory"), f"{path}.memory")
        memory_bytes = _opt_int(d.get("memoryBytes"), f"{path}.memoryBytes", 1)
        if memory is not None and memory_bytes is not None:
            raise SpecError(path, "set memory or memoryBytes, not both")
        cpu = d.get("cpu")
        try:
            if memory is not None:
                parse_memory_bytes(memory)
            if cpu is not None:
                parse_cpu_millis(cpu)
        except ValueError as e:
            raise SpecError(path, str(e)) from None
        return cls(
            memory_bytes,
            memory,
            cpu,
            _opt_int(d.get("openFiles"), f"{path}.openFiles", 1),
            _opt_int(d.get("processes"), f"{path}.processes", 1),
        )

    def memory_limit_bytes(self) -> int | None:
        if self.memoryBytes is not None:
            return self.memoryBytes
        return parse_memory_bytes(self.memory) if self.memory is not None else None

    def cpu_millis(self) -> int | None:
        return parse_cpu_millis(self.cpu) if self.cpu is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "memoryBytes": self.memoryBytes,
            "memory": self.memory,
            "cpu": self.cpu,
            "openFiles": self.openFiles,
            "processes": self.processes,
        }


@dataclass(frozen=True)
class Resources:
    limits: Limits | None = None

    def to_json(self) -> dict[str, Any]:
        return {"limits": self.limits.to_json() if self.limits else None}


@dataclass(frozen=True)
class AppSpec:
    lifecycle: Lifecycle
    nodeSelector: dict[str, str] | None = None
    nodeNames: list[str] | None = None
    artifacts: tuple[Artifact, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    configRefs: tuple[ObjectRef, ...] = ()
    secretRefs: tuple[ObjectRef, ...] = ()
    restartPolicy: RestartPolicy = "Always"
    ports: tuple[AppPort, ...] = ()
    healthCheck: HealthCheck | None = None
    resources: Resources | None = None

    @classmethod
    def read(cls, raw: Any, path: str = "spec") -> AppSpec:
        """The spec in ``raw`` (an App's ``spec`` object); :class:`SpecError` when unusable."""
        d = _obj(raw, path)
        policy = d.get("restartPolicy", "Always")
        if policy not in RESTART_POLICIES:
            raise SpecError(f"{path}.restartPolicy", "must be Always, OnFailure or Never")
        node_names = d.get("nodeNames")
        if node_names is not None:
            names = _list(node_names, f"{path}.nodeNames")
            node_names = [_str(n, f"{path}.nodeNames[{i}]") for i, n in enumerate(names)]
        selector = d.get("nodeSelector")
        ports = _items(d.get("ports"), f"{path}.ports", AppPort.read)
        check = d.get("healthCheck")
        health = None if check is None else HealthCheck.read(check, f"{path}.healthCheck")
        port = health.probe_port() if health else None
        if isinstance(port, str) and port not in {p.name for p in ports}:
            raise SpecError(f"{path}.healthCheck", f"no port named {port!r} in spec.ports")
        resources = _opt_obj(d.get("resources"), f"{path}.resources")
        limits = None if resources is None else resources.get("limits")
        return cls(
            lifecycle=Lifecycle.read(d.get("lifecycle"), f"{path}.lifecycle"),
            nodeSelector=None if selector is None else _str_map(selector, f"{path}.nodeSelector"),
            nodeNames=node_names,
            artifacts=_items(d.get("artifacts"), f"{path}.artifacts", Artifact.read),
            env=_str_map(d.get("env"), f"{path}.env", _ENV_NAME_RE),
            configRefs=_items(d.get("configRefs"), f"{path}.configRefs", ObjectRef.read),
            secretRefs=_items(d.get("secretRefs"), f"{path}.secretRefs", ObjectRef.read),
            restartPolicy=cast(RestartPolicy, policy),
            ports=ports,
            healthCheck=health,
            resources=None
            if resources is None
            else Resources(
                None if limits is None else Limits.read(limits, f"{path}.resources.limits")
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """Every field as plain JSON, defaults included (the ``models.apps`` dump)."""
        return {
            "nodeSelector": self.nodeSelector,
            "nodeNames": self.nodeNames,
            "artifacts": [a.to_json() for a in self.artifacts],
            "lifecycle": self.lifecycle.to_json(),
            "env": dict(self.env),
            "configRefs": [r.to_json() for r in self.configRefs],
            "secretRefs": [r.to_json() for r in self.secretRefs],
            "restartPolicy": self.restartPolicy,
            "ports": [p.to_json() for p in self.ports],
            "healthCheck": self.healthCheck.to_json() if self.healthCheck else None,
            "resources": self.resources.to_json() if self.resources else None,
        }


def is_valid_name(name: str) -> bool:
    """A valid object name (and so a safe directory name: no ``/``, never ``.`` or ``..``)."""
    return bool(_NAME_RE.match(name))


def is_valid_namespace(namespace: str) -> bool:
    """A valid namespace (a DNS label, so a safe directory name)."""
    return bool(_NAMESPACE_RE.match(namespace))


def check_app_object(obj: dict[str, Any]) -> None:
    """The envelope of an App: its kind, and a name and namespace safe to use as directories."""
    if obj.get("kind") != "App":
        raise SpecError("kind", f"is {obj.get('kind')!r}, not App")
    meta = _obj(obj.get("metadata"), "metadata")
    name = _str(meta.get("name"), "metadata.name")
    if not _NAME_RE.match(name):
        raise SpecError("metadata.name", f"{name!r} is not a valid name")
    namespace = meta.get("namespace")
    if namespace is not None and not _NAMESPACE_RE.match(_str(namespace, "metadata.namespace")):
        raise SpecError("metadata.namespace", f"{namespace!r} is not a valid namespace")


# ---------------------------------------------------------------- config files


def _file_map(obj: dict[str, Any], field: str) -> dict[str, str]:
    data = _str_map(obj.get(field), field)
    for key in data:
        if not _FILE_KEY_RE.match(key) or key in (".", ".."):
            raise SpecError(f"{field}.{key}", "is not a valid file key")
    return data


def _b64(data: dict[str, str], field: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError(f"{field}.{key}", "is not valid base64") from None
    return out


def config_files(kind: str, obj: Any) -> dict[str, bytes]:
    """The files of a ConfigMap (``data`` + ``binaryData``) or Secret (``data`` base64,
    ``stringData`` over it); :class:`SpecError` for a malformed object."""
    d = _obj(obj, "")
    if kind == "ConfigMap":
        out = {k: v.encode() for k, v in _file_map(d, "data").items()}
        out.update(_b64(_file_map(d, "binaryData"), "binaryData"))
        return out
    out = _b64(_file_map(d, "data"), "data")
    out.update({k: v.encode() for k, v in _file_map(d, "stringData").items()})
    return out
