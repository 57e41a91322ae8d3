"""The edge agent's settings tree and its loader, layered file < environment < overrides.

The same sections, names, defaults and layering as the cloud's settings
(:mod:`edgeweave.config.settings`), but as frozen dataclasses checked by a few lines of code
instead of pydantic: the agent runs for months on small machines, and pydantic alone would
cost it several MB of memory for as long as it lives (DESIGN.md §1).

Environment variables are ``EDGEWEAVE_<SECTION>__<FIELD>`` (``EDGEWEAVE_LINK__PING_INTERVAL_S=5``)
and are converted from text to the field's type (int, float, bool, Path); a settings file is
YAML with the same sections; overrides use dotted keys and win over both.

Must not: import pydantic, or yaml except to read a settings file that was given; read a file
or the environment at import time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast, get_type_hints

from edgeweave.errors import ConfigError

ENV_PREFIX = "EDGEWEAVE_"
DEFAULT_DATA_DIR = Path("data/edge")
DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")

T = TypeVar("T")


def _setting(
    default: T,
    description: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] = (),
) -> T:
    """A field with its description and range or choices (checked by :func:`_check_ranges`)."""
    meta = {"description": description, "ge": ge, "gt": gt, "le": le, "choices": choices}
    return field(default=default, metadata=meta)


def _check_ranges(section: object) -> None:
    problems = [
        f"{f.name}: {problem}"
        for f in dataclasses.fields(section)  # type: ignore[arg-type]
        if (problem := _range_problem(getattr(section, f.name), f.metadata))
    ]
    if problems:
        raise ConfigError(f"invalid settings: {'; '.join(problems)}")


def _range_problem(value: object, meta: Mapping[str, Any]) -> str:
    if meta.get("choices") and value not in meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])} (got {value!r})"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    if meta.get("ge") is not None and not value >= meta["ge"]:
        return f"must be greater than or equal to {meta['ge']} (got {value})"
    if meta.get("gt") is not None and not value > meta["gt"]:
        return f"must be greater than {meta['gt']} (got {value})"
    if meta.get("le") is not None and not value <= meta["le"]:
        return f"must be less than or equal to {meta['le']} (got {value})"
    return ""


@dataclass(frozen=True)
class LinkSettings:
    max_frame_bytes: int = _setting(1 << 20, "larger frames close the link", ge=4096)
    ping_interval_s: float = _setting(20.0, "websocket keepalive ping", gt=0)
    ping_timeout_s: float = _setting(20.0, "no pong within this → link broken", gt=0)
    open_timeout_s: float = _setting(10.0, gt=0)
    backoff_base_s: float = _setting(0.5, "reconnect backoff start (full jitter)", gt=0)
    backoff_cap_s: float = _setting(30.0, "reconnect backoff ceiling", gt=0)
    upstream_batch_entries: int = _setting(5000, "outbox entries per frame", ge=1)
    upstream_batch_bytes: int = _setting(512 * 1024, "outbox bytes per frame", ge=1024)
    upstream_in_flight: int = _setting(4, "unacked upstream frames", ge=1)

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class OutboxSettings:
    max_entries: int = _setting(10_000_000, "then the drop policy applies", ge=1000)
    max_bytes: int = _setting(1 << 30, "then the drop policy applies", ge=1 << 20)

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class RuntimeSettings:
    restart_backoff_base_s: float = _setting(1.0, "first restart delay", gt=0)
    restart_backoff_cap_s: float = _setting(300.0, "longest restart delay", gt=0)
    stop_apps_on_exit: bool = _setting(
        False, "stop apps when the agent exits (default: keep them; adopt on start)"
    )
    restart_backoff_reset_after_s: float = _setting(
        600.0, "a run this long resets the restart delay", gt=0
    )
    stop_grace_s: float = _setting(10.0, "SIGTERM, then SIGKILL after this long", gt=0)
    install_timeout_s: float = _setting(1800.0, "an install step longer than this fails", gt=0)
    max_log_bytes: int = _setting(10 << 20, "rotate app logs past this size", ge=1024)
    log_keep: int = _setting(3, "rotated log files kept per app", ge=1)
    log_check_interval_s: float = _setting(2.0, "how often log sizes are checked", gt=0)
    install_log_tail_lines: int = _setting(5, "install.log lines quoted when it fails", ge=0)
    cgroup_root: Path = _setting(DEFAULT_CGROUP_ROOT, "cgroup v2 mount (limits when writable)")  # noqa: RUF009 - a field() wrapper, Path is immutable
    cgroup_slice: str = _setting("edgeweave.slice", "cgroup the apps' groups go under")

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class DeviceSettings:
    enabled: bool = _setting(True, "run the device twin host and its MQTT bus")
    mqtt_url: str = _setting("", "external broker (mqtt://host:port); empty: the embedded one")
    broker_host: str = _setting("127.0.0.1", "the embedded broker's listen address")
    broker_port: int = _setting(
        1884, "the embedded broker's port (0: any free port)", ge=0, le=65535
    )
    max_payload_bytes: int = _setting(64 * 1024, "larger bus payloads get a 400 result", ge=1024)
    start_mappers: bool = _setting(True, "start the mappers the node's devices need")
    backoff_base_s: float = _setting(0.2, "bus reconnect backoff start", gt=0)
    backoff_cap_s: float = _setting(10.0, "bus reconnect backoff ceiling", gt=0)

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class MeshSettings:
    """The service mesh on this node: DNS, one proxy per service port, direct or relayed paths."""

    enabled: bool = _setting(True, "run the DNS responder and the service proxies")
    dns_listen: str = _setting(
        "auto",
        "HOST:PORT for DNS (port 0: any free port); auto = 169.254.96.16:53 when root and "
        "that address is configured, else 127.0.0.1:10053",
    )
    dns_upstream: str = _setting(
        "system", "where other names go: system (resolv.conf), HOST:PORT, or none (refuse)"
    )
    domain: str = _setting("cluster.local", "names under svc.<domain> are the mesh's")
    dns_ttl_s: int = _setting(5, "TTL of service answers", ge=0)
    service_cidr: str = _setting(
        "127.100.0.0/16", "each service gets a proxy address from here (the name's A record)"
    )
    advertise_address: str = _setting(
        "", "the address other nodes dial for this node's apps (default: the host's address)"
    )
    local_app_host: str = _setting("127.0.0.1", "where the agent reaches apps on this node")
    direct_connect_timeout_s: float = _setting(
        1.0, "a peer's address not answering within this → use the relay", gt=0
    )
    relay_open_timeout_s: float = _setting(5.0, "opening a relayed stream through the cloud", gt=0)
    reprobe_interval_s: float = _setting(
        30.0, "how often peers reached through the relay are tried directly again", gt=0
    )
    max_connections: int = _setting(1024, "open connections per service port", ge=1)

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class EdgePipelineSettings:
    """The pipelines placed on this node: local repos and jobs under DATA/pipelines."""

    enabled: bool = _setting(True, "run the pipelines the cloud places on this node")
    max_running_jobs: int = _setting(1, "jobs of different pipelines running at once", ge=1)
    max_file_bytes: int = _setting(1024**3, "largest file `edgeweave edge file put` accepts", ge=1)
    mount_namespace: str = _setting(
        "auto",
        "auto: each datum in a private mount namespace (/pfs, secrets hidden) when root; off",
        choices=("auto", "off"),
    )

    def __post_init__(self) -> None:
        _check_ranges(self)


@dataclass(frozen=True)
class EdgeSettings:
    data_dir: Path = field(
        default=DEFAULT_DATA_DIR, metadata={"description": "node identity, local store, apps"}
    )
    link: LinkSettings = field(default_factory=LinkSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    devices: DeviceSettings = field(default_factory=DeviceSettings)
    mesh: MeshSettings = field(default_factory=MeshSettings)
    pipelines: EdgePipelineSettings = field(default_factory=EdgePipelineSettings)


# ---- loading ------------------------------------------------------------------------------


def load_edge_settings(
    *,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EdgeSettings:
    """Build the agent's settings from defaults, then ``file``, then ``env``, then ``overrides``.

    ``overrides`` uses dotted keys (``{"runtime.stop_apps_on_exit": True}``); None values are
    ignored so argparse defaults of None fall through to lower layers. Any unknown name, value
    of the wrong type or value out of range raises one :class:`ConfigError` naming them all.
    """
    data: dict[str, Any] = _read_file(file) if file is not None else {}
    names = {f.name: _is_section(f.name) for f in dataclasses.fields(EdgeSettings)}
    for key, value in (env if env is not None else os.environ).items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if "__" in key[len(ENV_PREFIX) :]:
            if path[0] in names:  # the cloud and the agent share the prefix
                _set_path(data, path, value)
        elif names.get(path[0]) is False:  # a top-level field: EDGEWEAVE_DATA_DIR
            data[path[0]] = value
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, dotted.split("."), value)
    problems: list[str] = []
    settings = _build(EdgeSettings, data, "", problems)
    if problems:
        raise ConfigError(f"invalid settings: {'; '.join(problems)}")
    return settings


def _read_file(file: Path) -> dict[str, Any]:
    import yaml  # only when a settings file is given

    try:
        loaded = yaml.safe_load(file.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read settings file {file}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"settings file {file} is not valid YAML: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"settings file {file} must hold a mapping of sections")
    return loaded


def _is_section(name: str) -> bool:
    return dataclasses.is_dataclass(_hints(EdgeSettings)[name])


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"setting {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def _build(cls: type[T], data: object, where: str, problems: list[str]) -> T:
    """An instance of the settings dataclass ``cls`` from ``data``; problems are collected."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(f"{where.rstrip('.') or 'settings'}: must be a mapping of settings")
        return cls()
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name, raw in data.items():
        f = known.get(str(name))
        if f is None:
            problems.append(f"{where}{name}: unknown setting")
            continue
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            values[f.name] = _build(cast(type[Any], kind), raw, f"{where}{name}.", problems)
            continue
        try:
            value = _coerce(raw, kind)
        except ValueError as e:
            problems.append(f"{where}{name}: {e}")
            continue
        problem = _range_problem(value, f.metadata)
        if problem:
            problems.append(f"{where}{name}: {problem}")
            continue
        values[f.name] = value
    try:
        return cls(**values)
    except ConfigError:  # already reported field by field above
        return cls()


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def _coerce(raw: object, kind: object) -> Any:
    """``raw`` (from a file, the environment or a flag) as ``kind``; ValueError says why not."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"must be a boolean (true/false), got {raw!r}")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ValueError(f"must be an integer, got {raw!r}")
    if kind is float:
        number: float | None = None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            number = float(raw)
        elif isinstance(raw, str):
            try:
                number = float(raw.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise ValueError(f"must be a finite number, got {raw!r}")
        return number
    if kind is str:
        if isinstance(raw, str):
            return raw
        raise ValueError(f"must be text, got {raw!r}")
    if kind is Path:
        if isinstance(raw, (str, os.PathLike)) and str(raw):
            return Path(raw)
        raise ValueError(f"must be a path, got {raw!r}")
    raise ValueError(f"unsupported setting type {kind!r}")  # pragma: no cover - a new field


# ---- describing ---------------------------------------------------------------------------


def describe_edge_defaults() -> str:
    """The agent's defaults as commented YAML (`edgeweave config defaults --edge`)."""
    lines: list[str] = []
    _describe(EdgeSettings(), lines, indent="")
    return "\n".join(lines) + "\n"


def _describe(section: object, lines: list[str], indent: str) -> None:
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{indent}{f.name}:")
            _describe(value, lines, indent + "  ")
            continue
        description = f.metadata.get("description", "")
        comment = f"  # {description}" if description else ""
        lines.append(f"{indent}{f.name}: {_render(value)}{comment}")


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)  # a path: a plain YAML scalar unless it needs quoting
    plain = text and all(c.isalnum() or c in "/._-" for c in text) and text[0] not in "-."
    return text if plain else json.dumps(text)
