"""The messages of the cloud-edge link: one class per message type (docs/design/edge-link.md §3).

Every message carries ``type`` (the wire discriminator), ``id`` (16 hex chars, generated),
``parent_id`` (the id it answers, or ``None``) and ``sent_at`` (Unix seconds). Build a reply
with ``reply_to(request, Reply(...))`` or pass ``parent_id=request.id``.

Two directions, two unions: ``UpMessage`` is what an edge node may send (edge→cloud),
``DownMessage`` what the cloud may send (cloud→edge). ``artifact_url``, ``commit_url``,
``merge_url`` and ``output_url`` are the wire types used both ways: the requests are
``ArtifactUrlRequest``, ``CommitUrlRequest``, ``MergeUrlRequest``, ``OutputUrlRequest`` (up),
the answers ``ArtifactUrl``, ``CommitUrl``, ``MergeUrl``, ``OutputUrl`` (down).
``Error`` is shared.

Sizes are bounded per field (string length, list length) so a hostile frame cannot build more
than the frame limit allows; payloads that are plain JSON (``UpstreamEntry.payload``,
``Upsert.object``) stay plain JSON: there is no per-entry model to keep upstream decoding fast.

The classes are frozen slotted dataclasses (keyword arguments only; a list given for a tuple
field becomes a tuple). Constructing one does not validate it: each field declares its check in
its metadata and ``protocol.codec`` applies them, strictly, to everything it decodes. The
module imports no validation library, so the edge agent stays small.

This module must not do I/O or know about sessions; turning bytes into these objects happens
only in ``protocol.codec``. A node's identity is never a message field: it is the link's
certificate.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edgeweave.protocol._validate import (
    any_json,
    boolean,
    check_of,
    integer,
    json_object,
    number,
    optional,
    pattern,
    record,
    str_dict,
    text,
    tuple_of,
)
from edgeweave.protocol.refs import ResourceRef, Versioned

MAX_STR_CHARS = 64 * 1024
"""Longest free-text string field (messages, log lines, PEM blobs)."""
MAX_NAME_CHARS = 512
"""Longest identifier-like string (versions, stream ids, condition types, label keys)."""
MAX_ITEMS = 100_000
"""Longest list of references (``held``, ``ack``) or upstream entries in one message."""
MAX_LOG_LINES = 10_000
MAX_SMALL_LIST = 1_024
"""Conditions, addresses, labels: a node has a handful of each."""
MAX_SEQ = (1 << 63) - 1
"""Sequence numbers and resourceVersions are SQLite INTEGERs."""

_text = text(MAX_STR_CHARS)
_name = text(MAX_NAME_CHARS)
TEXT = check_of(_text)
NAME = check_of(_name)
SEQ = check_of(integer(0, MAX_SEQ))
COUNT = SEQ
SECONDS = check_of(number())
MESSAGE_ID_PATTERN = r"^[0-9a-f]{16}$"
MESSAGE_ID = check_of(pattern(MESSAGE_ID_PATTERN))
DIGEST = check_of(pattern(r"^sha256:[0-9a-f]{64}$"))
HEX_DIGEST = check_of(pattern(r"^[0-9a-f]{64}$"))
COMMIT_ID = check_of(pattern(r"^[0-9a-f]{32}$"))
BOOL = check_of(boolean)


def new_message_id() -> str:
    """A fresh message id: 16 lowercase hex chars.

    A correlation id on one authenticated link, not a secret: drawn from :mod:`random`
    (seeded from the OS at start), because ``os.urandom`` lets go of the GIL for its system
    call, and taking it back behind a busy worker thread cost up to 30 µs a message (under
    cProfile, in the agent)."""
    return f"{random.getrandbits(64):016x}"


def _tuples(obj: object, *names: str) -> None:
    # lists given to the constructor become tuples, as the fields are declared
    for name in names:
        value = getattr(obj, name)
        if type(value) is not tuple:
            object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of every link message. Subclasses fix ``type`` to their wire name."""

    type: str
    id: str = field(default_factory=new_message_id, metadata=MESSAGE_ID)
    parent_id: str | None = field(default=None, metadata=check_of(optional(MESSAGE_ID["check"])))
    sent_at: float = field(default_factory=time.time, metadata=SECONDS)


M = TypeVar("M", bound=Message)


def reply_to(parent: Message, msg: M) -> M:
    """``msg`` as an answer to ``parent`` (its ``parent_id`` set to ``parent.id``)."""
    return dataclasses.replace(msg, parent_id=parent.id)


# ---------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    cpu: float = field(metadata=check_of(number(ge=0)))
    """Logical CPUs (may be fractional)."""
    memory_bytes: int = field(metadata=COUNT)


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    type: str = field(metadata=NAME)
    """``InternalIP``, ``ExternalIP``, ``Hostname`` (Kubernetes' node address types)."""
    address: str = field(metadata=NAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str = field(metadata=NAME)
    status: str = field(metadata=NAME)
    """``True`` / ``False`` / ``Unknown``."""
    reason: str = field(default="", metadata=NAME)
    message: str = field(default="", metadata=TEXT)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamEntry:
    """One outbox entry. ``payload`` is plain JSON, shaped by ``topic`` (edge-link.md §5)."""

    seq: int = field(metadata=SEQ)
    topic: str = field(metadata=NAME)
    payload: Any = field(metadata=check_of(any_json))


@dataclass(frozen=True, slots=True, kw_only=True)
class AppName:
    namespace: str = field(metadata=NAME)
    name: str = field(metadata=NAME)


_VERSIONED_LIST = check_of(tuple_of(record(Versioned), MAX_ITEMS))


# ---------------------------------------------------------------- edge → cloud


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    type: str = "hello"
    agent_version: str = field(metadata=NAME)
    boot_id: str = field(metadata=NAME)
    held_count: int = field(metadata=COUNT)
    held_digest: str = field(metadata=HEX_DIGEST)
    capacity: Capacity = field(metadata=check_of(record(Capacity)))
    addresses: tuple[Address, ...] = field(
        default=(), metadata=check_of(tuple_of(record(Address), MAX_SMALL_LIST))
    )
    labels: dict[str, str] = field(
        default_factory=dict, metadata=check_of(str_dict(_name, _name, MAX_SMALL_LIST))
    )

    def __post_init__(self) -> None:
        _tuples(self, "addresses")


@dataclass(frozen=True, slots=True, kw_only=True)
class Held(Message):
    type: str = "held"
    items: tuple[Versioned, ...] = field(metadata=_VERSIONED_LIST)
    last: bool = field(metadata=BOOL)

    def __post_init__(self) -> None:
        _tuples(self, "items")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    type: str = "ack"
    items: tuple[Versioned, ...] = field(metadata=_VERSIONED_LIST)

    def __post_init__(self) -> None:
        _tuples(self, "items")


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Message):
    type: str = "heartbeat"
    seq: int = field(metadata=SEQ)
    conditions: tuple[Condition, ...] = field(
        default=(), metadata=check_of(tuple_of(record(Condition), MAX_SMALL_LIST))
    )
    apps_running: int = field(default=0, metadata=COUNT)
    apps_failed: int = field(default=0, metadata=COUNT)

    def __post_init__(self) -> None:
        _tuples(self, "conditions")


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream(Message):
    type: str = "upstream"
    entries: tuple[UpstreamEntry, ...] = field(
        metadata=check_of(tuple_of(record(UpstreamEntry), MAX_ITEMS))
    )

    def __post_init__(self) -> None:
        _tuples(self, "entries")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactUrlRequest(Message):
    type: str = "artifact_url"
    digest: str = field(metadata=DIGEST)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitUrlRequest(Message):
    """Ask for a URL to fetch a commit a Copier sends this node (its manifest and chunks)."""

    type: str = "commit_url"
    commit: str = field(metadata=COMMIT_ID)


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeUrlRequest(Message):
    """Ask for a URL to deliver commits to a Merger placed on this node (bytes go over HTTP)."""

    type: str = "merge_url"
    pipeline: AppName = field(metadata=check_of(record(AppName)))


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputUrlRequest(Message):
    """Ask for a URL to push the output commits of a pipeline this cloud worker runs."""

    type: str = "output_url"
    pipeline: AppName = field(metadata=check_of(record(AppName)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Renew(Message):
    type: str = "renew"
    csr: str = field(metadata=TEXT)
    """PEM certificate signing request."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsData(Message):
    type: str = "logs_data"
    stream_id: str = field(metadata=NAME)
    lines: tuple[str, ...] = field(default=(), metadata=check_of(tuple_of(_text, MAX_LOG_LINES)))
    eof: bool = field(default=False, metadata=BOOL)

    def __post_init__(self) -> None:
        _tuples(self, "lines")


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Message):
    """Either direction. ``reason`` is an ``edgeweave.errors`` reason (e.g. ``Forbidden``)."""

    type: str = "error"
    reason: str = field(metadata=NAME)
    message: str = field(default="", metadata=TEXT)


# ---------------------------------------------------------------- cloud → edge


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome(Message):
    type: str = "welcome"
    session: str = field(metadata=NAME)
    heartbeat_interval_s: float = field(metadata=check_of(number(gt=0)))
    upstream_committed_seq: int = field(metadata=SEQ)
    server_time: float = field(metadata=SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resync(Message):
    type: str = "resync"


@dataclass(frozen=True, slots=True, kw_only=True)
class Upsert(Message):
    type: str = "upsert"
    ref: ResourceRef = field(metadata=check_of(record(ResourceRef)))
    rv: int = field(metadata=SEQ)
    object: dict[str, Any] = field(metadata=check_of(json_object))


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(Message):
    type: str = "delete"
    ref: ResourceRef = field(metadata=check_of(record(ResourceRef)))
    rv: int = field(metadata=SEQ)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncDone(Message):
    type: str = "sync_done"
    rv: int = field(metadata=SEQ)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatAck(Message):
    type: str = "heartbeat_ack"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamAck(Message):
    type: str = "upstream_ack"
    committed_seq: int = field(metadata=SEQ)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactUrl(Message):
    type: str = "artifact_url"
    digest: str = field(metadata=DIGEST)
    url: str = field(metadata=TEXT)
    expires_at: float = field(metadata=SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitUrl(Message):
    type: str = "commit_url"
    commit: str = field(metadata=COMMIT_ID)
    url: str = field(metadata=TEXT)
    """``.../transfer/<commit>?node=&exp=&sig=``; add ``/manifest`` or ``/chunks/<hex>``."""
    expires_at: float = field(metadata=SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeUrl(Message):
    type: str = "merge_url"
    pipeline: AppName = field(metadata=check_of(record(AppName)))
    url: str = field(metadata=TEXT)
    """``.../merge/<namespace>/<name>?node=&exp=&sig=``; add ``/missing``, ``/chunks/<hex>``,
    ``/commit``."""
    expires_at: float = field(metadata=SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputUrl(Message):
    type: str = "output_url"
    pipeline: AppName = field(metadata=check_of(record(AppName)))
    url: str = field(metadata=TEXT)
    """``.../output/<namespace>/<name>?node=&exp=&sig=``; add ``/missing``, ``/chunks/<hex>``,
    ``/commit``."""
    expires_at: float = field(metadata=SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Renewed(Message):
    type: str = "renewed"
    certificate: str = field(metadata=TEXT)
    """PEM certificate (chain)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsRequest(Message):
    type: str = "logs_request"
    stream_id: str = field(metadata=NAME)
    app: AppName = field(metadata=check_of(record(AppName)))
    tail_lines: int | None = field(default=None, metadata=check_of(optional(SEQ["check"])))
    """``None``: the whole current log file."""
    follow: bool = field(default=False, metadata=BOOL)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsCancel(Message):
    type: str = "logs_cancel"
    stream_id: str = field(metadata=NAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayOpen(Message):
    """A consumer node asked the hub for a relayed stream to a service endpoint on this node.

    The node connects to ``target_port`` on itself, then dials the hub's relay endpoint with
    ``stream_id``; or answers ``error`` (``parent_id`` = this id) when it cannot. The hub has
    already checked that the consumer may reach the service; the node checks that the port is
    one of its own endpoints of that service (mesh issue, docs/mesh.md).
    """

    type: str = "relay_open"
    stream_id: str = field(metadata=NAME)
    service: AppName = field(metadata=check_of(record(AppName)))
    """The Service (namespace, name) the stream is for."""
    port: int = field(metadata=check_of(integer(1, 65535)))
    """The service port the consumer connected to."""
    target_port: int = field(metadata=check_of(integer(1, 65535)))
    """The port of the app on this node, from the service's Endpoints."""


UpMessage = (
    Hello
    | Held
    | Ack
    | Heartbeat
    | Upstream
    | ArtifactUrlRequest
    | CommitUrlRequest
    | MergeUrlRequest
    | OutputUrlRequest
    | Renew
    | LogsData
    | Error
)
"""What an edge node may send (edge→cloud)."""

DownMessage = (
    Welcome
    | Resync
    | Upsert
    | Delete
    | SyncDone
    | HeartbeatAck
    | UpstreamAck
    | ArtifactUrl
    | CommitUrl
    | MergeUrl
    | OutputUrl
    | Renewed
    | LogsRequest
    | LogsCancel
    | RelayOpen
    | Error
)
"""What the cloud may send (cloud→edge)."""

UP_TYPES: dict[str, type[Message]] = {
    "hello": Hello,
    "held": Held,
    "ack": Ack,
    "heartbeat": Heartbeat,
    "upstream": Upstream,
    "artifact_url": ArtifactUrlRequest,
    "commit_url": CommitUrlRequest,
    "merge_url": MergeUrlRequest,
    "output_url": OutputUrlRequest,
    "renew": Renew,
    "logs_data": LogsData,
    "error": Error,
}
DOWN_TYPES: dict[str, type[Message]] = {
    "welcome": Welcome,
    "resync": Resync,
    "upsert": Upsert,
    "delete": Delete,
    "sync_done": SyncDone,
    "heartbeat_ack": HeartbeatAck,
    "upstream_ack": UpstreamAck,
    "artifact_url": ArtifactUrl,
    "commit_url": CommitUrl,
    "merge_url": MergeUrl,
    "output_url": OutputUrl,
    "renewed": Renewed,
    "logs_request": LogsRequest,
    "logs_cancel": LogsCancel,
    "relay_open": RelayOpen,
    "error": Error,
}
