"""The messages of the cloud-edge link: one class per message type (docs/design/edge-link.md §3).

Every message carries ``type`` (the wire discriminator), ``id`` (16 hex chars, generated),
``parent_id`` (the id it answers, or ``None``) and ``sent_at`` (Unix seconds). Build a reply
with ``reply_to(request, Reply(...))`` or pass ``parent_id=request.id``.

Two directions, two unions: ``UpMessage`` is what an edge node may send (edge→cloud),
``DownMessage`` what the cloud may send (cloud→edge). ``artifact_url`` is the one wire type used
both ways: the request is ``ArtifactUrlRequest`` (up), the answer ``ArtifactUrl`` (down).
``Error`` is shared.

Sizes are bounded per field (string length, list length) so a hostile frame cannot build more
than the frame limit allows; payloads that are plain JSON (``UpstreamEntry.payload``,
``Upsert.object``) stay plain JSON: there is no per-entry model to keep upstream decoding fast.

This module must not do I/O or know about sessions; turning bytes into these objects happens
only in ``protocol.codec``. A node's identity is never a message field: it is the link's
certificate.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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

Text = Annotated[str, Field(max_length=MAX_STR_CHARS)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
Count = Annotated[int, Field(ge=0, le=MAX_SEQ)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]
MessageId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def new_message_id() -> str:
    """A fresh message id: 16 lowercase hex chars."""
    return secrets.token_hex(8)


class _Model(BaseModel):
    # Unknown fields are ignored so an older peer can read a newer peer's messages
    # (fields are added, never renamed); the codec validates wire data in strict mode.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Message(_Model):
    """Base of every link message. Subclasses fix ``type`` to their wire name."""

    type: str
    id: MessageId = Field(default_factory=new_message_id)
    parent_id: MessageId | None = None
    sent_at: Seconds = Field(default_factory=time.time)


M = TypeVar("M", bound=Message)


def reply_to(parent: Message, msg: M) -> M:
    """``msg`` as an answer to ``parent`` (its ``parent_id`` set to ``parent.id``)."""
    return msg.model_copy(update={"parent_id": parent.id})


# ---------------------------------------------------------------- parts


class Capacity(_Model):
    cpu: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    """Logical CPUs (may be fractional)."""
    memory_bytes: Count


class Address(_Model):
    type: Name
    """``InternalIP``, ``ExternalIP``, ``Hostname`` (Kubernetes' node address types)."""
    address: Name


class Condition(_Model):
    type: Name
    status: Name
    """``True`` / ``False`` / ``Unknown``."""
    reason: Name = ""
    message: Text = ""


class UpstreamEntry(_Model):
    """One outbox entry. ``payload`` is plain JSON, shaped by ``topic`` (edge-link.md §5)."""

    seq: Seq
    topic: Name
    payload: Any


class AppName(_Model):
    namespace: Name
    name: Name


# ---------------------------------------------------------------- edge → cloud


class Hello(Message):
    type: Literal["hello"] = "hello"
    agent_version: Name
    boot_id: Name
    held_count: Count
    held_digest: HexDigest
    capacity: Capacity
    addresses: Annotated[tuple[Address, ...], Field(max_length=MAX_SMALL_LIST)] = ()
    labels: Annotated[dict[Name, Name], Field(max_length=MAX_SMALL_LIST)] = Field(
        default_factory=dict
    )


class Held(Message):
    type: Literal["held"] = "held"
    items: Annotated[tuple[Versioned, ...], Field(max_length=MAX_ITEMS)]
    last: bool


class Ack(Message):
    type: Literal["ack"] = "ack"
    items: Annotated[tuple[Versioned, ...], Field(max_length=MAX_ITEMS)]


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"
    seq: Seq
    conditions: Annotated[tuple[Condition, ...], Field(max_length=MAX_SMALL_LIST)] = ()
    apps_running: Count = 0
    apps_failed: Count = 0


class Upstream(Message):
    type: Literal["upstream"] = "upstream"
    entries: Annotated[tuple[UpstreamEntry, ...], Field(max_length=MAX_ITEMS)]


class ArtifactUrlRequest(Message):
    type: Literal["artifact_url"] = "artifact_url"
    digest: Digest


class Renew(Message):
    type: Literal["renew"] = "renew"
    csr: Text
    """PEM certificate signing request."""


class LogsData(Message):
    type: Literal["logs_data"] = "logs_data"
    stream_id: Name
    lines: Annotated[tuple[Text, ...], Field(max_length=MAX_LOG_LINES)] = ()
    eof: bool = False


class Error(Message):
    """Either direction. ``reason`` is an ``edgeweave.errors`` reason (e.g. ``Forbidden``)."""

    type: Literal["error"] = "error"
    reason: Name
    message: Text = ""


# ---------------------------------------------------------------- cloud → edge


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    session: Name
    heartbeat_interval_s: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    upstream_committed_seq: Seq
    server_time: Seconds


class Resync(Message):
    type: Literal["resync"] = "resync"


class Upsert(Message):
    type: Literal["upsert"] = "upsert"
    ref: ResourceRef
    rv: Seq
    object: dict[str, Any]


class Delete(Message):
    type: Literal["delete"] = "delete"
    ref: ResourceRef
    rv: Seq


class SyncDone(Message):
    type: Literal["sync_done"] = "sync_done"
    rv: Seq


class HeartbeatAck(Message):
    type: Literal["heartbeat_ack"] = "heartbeat_ack"


class UpstreamAck(Message):
    type: Literal["upstream_ack"] = "upstream_ack"
    committed_seq: Seq


class ArtifactUrl(Message):
    type: Literal["artifact_url"] = "artifact_url"
    digest: Digest
    url: Text
    expires_at: Seconds


class Renewed(Message):
    type: Literal["renewed"] = "renewed"
    certificate: Text
    """PEM certificate (chain)."""


class LogsRequest(Message):
    type: Literal["logs_request"] = "logs_request"
    stream_id: Name
    app: AppName
    tail_lines: Count | None = None
    """``None``: the whole current log file."""
    follow: bool = False


class LogsCancel(Message):
    type: Literal["logs_cancel"] = "logs_cancel"
    stream_id: Name


UpMessage = Annotated[
    Hello | Held | Ack | Heartbeat | Upstream | ArtifactUrlRequest | Renew | LogsData | Error,
    Field(discriminator="type"),
]
"""What an edge node may send (edge→cloud)."""

DownMessage = Annotated[
    Welcome
    | Resync
    | Upsert
    | Delete
    | SyncDone
    | HeartbeatAck
    | UpstreamAck
    | ArtifactUrl
    | Renewed
    | LogsRequest
    | LogsCancel
    | Error,
    Field(discriminator="type"),
]
"""What the cloud may send (cloud→edge)."""

UP_TYPES: dict[str, type[Message]] = {
    "hello": Hello,
    "held": Held,
    "ack": Ack,
    "heartbeat": Heartbeat,
    "upstream": Upstream,
    "artifact_url": ArtifactUrlRequest,
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
    "renewed": Renewed,
    "logs_request": LogsRequest,
    "logs_cancel": LogsCancel,
    "error": Error,
}
