"""The cloud's settings tree and how it is assembled (file < environment < command line).

Environment variables are ``EDGEWEAVE_<SECTION>__<FIELD>`` (for example
``EDGEWEAVE_API__MAX_BODY_BYTES=2097152``); a settings file is YAML with the same sections.
Values from the command line win over both.

The edge agent's settings are in :mod:`edgeweave.config.edge` (plain dataclasses, no pydantic,
so the agent does not load it); they are re-exported here for older imports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeweave.config.edge import ENV_PREFIX
from edgeweave.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "ApiSettings",
    "CloudSettings",
    "ObjectSettings",
    "PipelineSettings",
    "ServerSettings",
    "StoreSettings",
    "describe_defaults",
    "load_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(8443, ge=0, le=65535, description="0 picks a free port")
    tls: bool = Field(True, description="serve HTTPS with the cloud's own CA")
    gc_freeze_interval_s: float = Field(
        10.0, ge=0, description="freeze long-lived objects out of full GCs (0: off)"
    )
    gc_thaw_interval_s: float = Field(
        3600.0, gt=0, description="then a full collection of everything, once in a while"
    )
    advertise_hosts: list[str] = Field(
        default_factory=list, description="extra names/IPs for the server certificate"
    )
    hub_port: int = Field(8444, ge=0, le=65535, description="edge link port; 0 picks a free one")


class StoreSettings(_Section):
    url: str = Field(
        "", description="'' or sqlite:///PATH (default DATA/edgeweave.db), or postgresql://..."
    )
    changelog_retention: int = Field(
        100_000, ge=100, description="change-log entries kept for watch resume"
    )
    twin_history_points: int = Field(
        10_000, ge=1, description="reported twin values kept per device property"
    )
    twin_history_max_age_s: float = Field(
        7 * 86400.0, gt=0, description="reported twin values older than this are dropped"
    )


class ApiSettings(_Section):
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger bodies get 413")
    list_default_limit: int = Field(500, ge=1)
    list_max_limit: int = Field(5000, ge=1)
    watch_bookmark_s: float = Field(15.0, gt=0, description="idle watch streams get a BOOKMARK")
    max_watches: int = Field(1000, ge=1, description="open watch streams before 429")


class ObjectSettings(_Section):
    max_bytes: int = Field(
        1 << 30, ge=1, description="largest object (artifact) PUT /api/v1/objects accepts"
    )


class PipelineSettings(_Section):
    """The cloud's pipeline worker: repos and jobs under DATA/pipelines (docs/pipelines.md)."""

    enabled: bool = Field(True, description="run cloud-placed pipelines in this process")
    max_running_jobs: int = Field(
        2, ge=1, description="jobs at once; each runs parallelism_spec datums at a time"
    )
    max_file_bytes: int = Field(
        1 << 30, ge=1, description="largest file one PUT /api/v1/pfs/files request stores"
    )
    mount_namespace: Literal["auto", "off"] = Field(
        "auto",
        description="auto: each datum in a private mount namespace (/pfs, secrets hidden) "
        "when root on Linux",
    )


class HubSettings(_Section):
    """The edge hub: the WebSocket endpoint agents dial (port in ``server.hub_port``)."""

    max_frame_bytes: int = Field(
        1 << 20, ge=4096, description="a larger frame closes that link with 1009"
    )
    ping_interval_s: float = Field(
        60.0, gt=0, description="websocket keepalive ping (agents' heartbeats also prove life)"
    )
    ping_timeout_s: float = Field(30.0, gt=0, description="no pong within this: link broken")
    open_timeout_s: float = Field(
        10.0, gt=0, description="TLS + websocket handshake, and the wait for hello"
    )
    close_timeout_s: float = Field(5.0, gt=0, description="wait for the peer's close frame")
    heartbeat_interval_s: float = Field(15.0, gt=0, description="told to agents in welcome")
    node_grace_s: float = Field(40.0, gt=0, description="NotReady after this without heartbeat")
    node_status_refresh_s: float = Field(
        300.0, gt=0, description="Node.status rewritten at most this often without a transition"
    )
    lifecycle_sweep_s: float = Field(
        2.0, gt=0, description="how often the lifecycle controller looks at heartbeats"
    )
    send_queue_max: int = Field(
        1000, ge=16, description="queued control frames per session; overflow closes the link"
    )
    upstream_entries_per_turn: int = Field(
        5000, ge=1, description="upstream entries committed for one node before the next node"
    )
    log_stream_buffer: int = Field(
        256, ge=1, description="buffered log chunks per stream; a slower reader ends the stream"
    )
    relay_open_timeout_s: float = Field(
        5.0, gt=0, description="mesh relay: how long the target node may take to join a stream"
    )
    relay_max_streams: int = Field(
        4096, ge=1, description="mesh relay: streams open or opening at once, all nodes together"
    )
    relay_max_streams_per_node: int = Field(
        1024, ge=1, description="mesh relay: streams open or opening at once from one node"
    )


class CloudSettings(_Section):
    data_dir: Path = Field(Path("data/cloud"), description="CA, tokens, SQLite database")
    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    objects: ObjectSettings = Field(default_factory=ObjectSettings)
    hub: HubSettings = Field(default_factory=HubSettings)
    pipelines: PipelineSettings = Field(default_factory=PipelineSettings)
    write_user_config: bool = Field(
        True, description="write ~/.config/edgeweave/config.yaml when it does not exist"
    )


SettingsT = TypeVar("SettingsT", bound=_Section)


def load_settings(
    model: type[SettingsT],
    *,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> SettingsT:
    """Build settings from defaults, then ``file``, then ``env``, then ``overrides``.

    ``overrides`` uses dotted keys (``{"server.port": 0}``); None values are ignored so
    argparse defaults of None fall through to lower layers.
    """
    data: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except OSError as e:
            raise ConfigError(f"cannot read settings file {file}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"settings file {file} is not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"settings file {file} must hold a mapping of sections")
        data = loaded
    for key, value in (env if env is not None else os.environ).items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            path = key[len(ENV_PREFIX) :].lower().split("__")
            if path[0] in model.model_fields:  # the cloud and the agent share the prefix
                _set_path(data, path, _env_value(value))
        elif key.startswith(ENV_PREFIX):  # a top-level field: EDGEWEAVE_DATA_DIR
            name = key[len(ENV_PREFIX) :].lower()
            field = model.model_fields.get(name)
            if field is not None and not _is_section(field.annotation):
                data[name] = value
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, dotted.split("."), value)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from e


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _env_value(value: str) -> Any:
    """A value starting with ``[`` is read as a JSON list; everything else stays text."""
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return value
    return value


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"setting {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def describe_defaults(model: type[BaseModel] = CloudSettings) -> str:
    """The defaults as commented YAML (what `edgeweave config defaults` prints)."""
    lines: list[str] = []
    _describe(model, lines, indent="")
    return "\n".join(lines) + "\n"


def _describe(model: type[BaseModel], lines: list[str], indent: str) -> None:
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"{indent}{name}:")
            _describe(ann, lines, indent + "  ")
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, Path):
            default = str(default)
        rendered = yaml.safe_dump(default, default_flow_style=True).strip()
        if rendered.endswith("\n..."):
            rendered = rendered[: -len("\n...")]
        rendered = rendered.removesuffix("...").strip()
        comment = f"  # {field.description}" if field.description else ""
        lines.append(f"{indent}{name}: {rendered}{comment}")
