"""The one codec of the link: messages to JSON text and back (docs/design/edge-link.md §3).

This is the only place bytes become messages. ``decode`` checks the size before parsing,
validates in strict mode (no ``"1"`` for an int, no ``1`` for a bool) and accepts only the
message types the peer may send in that direction: the cloud decodes ``direction="up"``
(edge→cloud), the agent ``direction="down"`` (cloud→edge). Every failure is a
``PayloadTooLarge`` or a ``ProtocolError`` whose message names the offending field path, such as
``entries[3].seq`` — never a foreign exception.

Parsing is the standard library's ``json`` (NaN/Infinity and numbers too large for a float
refused); validation is :mod:`edgeweave.protocol._validate`, driven by the checks each message
field declares, with hand-written fast paths for the two long lists (upstream entries, held /
acked references). No validation library is imported: the edge agent must stay small.

It must not do I/O, log, or interpret what a message means.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

from edgeweave.errors import PayloadTooLarge, ProtocolError
from edgeweave.protocol import _validate as v
from edgeweave.protocol.messages import (
    DOWN_TYPES,
    MAX_ITEMS,
    MAX_NAME_CHARS,
    MAX_SEQ,
    UP_TYPES,
    DownMessage,
    Message,
    UpMessage,
    Upstream,
    UpstreamEntry,
)
from edgeweave.protocol.refs import MAX_REF_PART_CHARS, ResourceRef, Versioned

DEFAULT_MAX_FRAME_BYTES = 1 << 20
"""1 MiB, the default ``link.max_frame_bytes``."""

Direction = Literal["up", "down"]

_UTF8_MAX_BYTES_PER_CHAR = 4
_DIRECTION_WORDS = {"up": "edge→cloud", "down": "cloud→edge"}
_MAX_TAG_CHARS = 100


class _NonFinite(Exception):
    pass


def _refuse_constant(token: str) -> Any:
    raise _NonFinite(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise _NonFinite(token)
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _fields_of(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(obj):
            raise TypeError(f"{cls.__name__} is not JSON")
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(obj))
    return {name: getattr(obj, name) for name in names}


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_fields_of
)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON data with non-finite floats as ``null`` (the slow path)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(x) for k, x in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(x) for x in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(x) for k, x in _fields_of(value).items()}
    return value


def encode(msg: Message) -> str:
    """Compact JSON text of ``msg`` (one frame); a non-finite float is written as ``null``."""
    try:
        try:
            return _ENCODER.encode(msg)
        except ValueError:  # NaN/Infinity somewhere (or a cycle): retry the slow way
            return _ENCODER.encode(_plain(msg))
    except (TypeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"cannot encode {msg.type} message: {e}") from None


def encode_upstream(head: Upstream, entry_texts: Sequence[str]) -> str:
    """An ``upstream`` frame whose entries are already JSON text (the outbox stores them so):
    the head's fields are encoded as usual and the entries spliced in, never re-parsed. The
    texts must each be one JSON object ``{"seq","topic","payload"}``; the receiver validates."""
    if head.entries:
        raise ProtocolError("encode_upstream takes the entries as text, not in the head")
    frame = encode(head)
    marker = '"entries":[]'
    at = frame.index(marker)
    return f'{frame[:at]}"entries":[{",".join(entry_texts)}]{frame[at + len(marker) :]}'


JsonLoads = Callable[[str | bytes], Any]


@overload
def decode(
    data: str | bytes,
    *,
    direction: Literal["up"],
    max_bytes: int = ...,
    loads: JsonLoads | None = ...,
) -> UpMessage: ...
@overload
def decode(
    data: str | bytes,
    *,
    direction: Literal["down"],
    max_bytes: int = ...,
    loads: JsonLoads | None = ...,
) -> DownMessage: ...
def decode(
    data: str | bytes,
    *,
    direction: Direction,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    loads: JsonLoads | None = None,
) -> Message:
    """The message in ``data``, as sent by the peer of ``direction``.

    ``direction="up"``: a frame an edge node sent (the cloud decodes these);
    ``direction="down"``: a frame the cloud sent (the agent decodes these).
    ``loads``: a faster JSON parser with the same strictness (refuses NaN, Infinity and lone
    surrogates; raises ValueError), such as ``orjson.loads`` — the hub passes one; the agent
    keeps the standard library's and loads nothing more.
    """
    _check_size(data, max_bytes)
    if direction == "up":
        table, other = _UP, DOWN_TYPES
    elif direction == "down":
        table, other = _DOWN, UP_TYPES
    else:
        raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
    raw = _parse(data) if loads is None else _parse_with(loads, data)
    if type(raw) is not dict:
        raise ProtocolError("frame is not a JSON object")
    if "type" not in raw:
        raise ProtocolError("message has no 'type' field")
    tag = raw["type"]
    entry = table.get(tag) if type(tag) is str else None
    if entry is None:
        tag_text = tag if type(tag) is str else str(tag)
        tag_text = tag_text[:_MAX_TAG_CHARS]
        if tag_text in other:
            return _wrong_direction(tag_text, direction)
        raise ProtocolError(f"unknown message type {tag_text!r}")
    cls, plan = entry
    try:
        msg: Message = v.build(cls, plan, raw)
    except v.Invalid as e:
        raise ProtocolError(
            f"bad {tag} message: field {_path(e.loc) or '(message)'}: {e.msg}"
        ) from None
    return msg


def _wrong_direction(tag: str, direction: Direction) -> Message:
    other = "down" if direction == "up" else "up"
    raise ProtocolError(
        f"message type {tag!r} is sent {_DIRECTION_WORDS[other]} only; "
        f"not accepted {_DIRECTION_WORDS[direction]}"
    )


def _parse(data: str | bytes) -> Any:
    if isinstance(data, str):
        text = data
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeError as e:  # a str holding lone surrogates cannot be UTF-8
                raise ProtocolError(f"frame is not valid UTF-8 text: {e}") from None
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeError as e:
            raise ProtocolError(f"frame is not valid UTF-8 text: {e}") from None
    try:
        raw = _DECODER.decode(text)
    except _NonFinite as e:
        raise ProtocolError(f"frame holds a non-finite number (NaN/Infinity): {e}") from None
    except RecursionError:
        raise ProtocolError("frame is not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(f"frame is not valid JSON: {e}") from None
    if "\\u" in text and not _utf8_clean(raw):
        raise ProtocolError("frame is not valid JSON: a \\u escape is a lone surrogate")
    return raw


def _parse_with(loads: JsonLoads, data: str | bytes) -> Any:
    try:
        return loads(data)
    except RecursionError:
        raise ProtocolError("frame is not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(f"frame is not valid JSON: {e}") from None


def _utf8_clean(value: Any) -> bool:
    """False when a string (or key) in ``value`` holds a lone surrogate (from a \\u escape)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _check_size(data: str | bytes, max_bytes: int) -> None:
    if isinstance(data, str):
        n = len(data)
        if n <= max_bytes // _UTF8_MAX_BYTES_PER_CHAR:
            return  # cannot be over the limit, whatever the characters
        if n <= max_bytes:
            n = len(data.encode("utf-8", "surrogatepass"))
    elif isinstance(data, bytes | bytearray | memoryview):
        n = len(data)
    else:
        raise ProtocolError(f"frame must be text or bytes, not {type(data).__name__}")
    if n > max_bytes:
        raise PayloadTooLarge(f"frame of {n} bytes is over the limit of {max_bytes} bytes")


def _path(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# ---------------------------------------------------------------- fast paths for long lists
# Items are built the way the frozen dataclass' __init__ would, through the slots' own
# descriptors (an __init__ call per item costs more than the checks themselves).

_new = object.__new__
_set_seq = getattr(UpstreamEntry, "seq").__set__  # noqa: B009 - the slot descriptor
_set_topic = getattr(UpstreamEntry, "topic").__set__  # noqa: B009
_set_payload = getattr(UpstreamEntry, "payload").__set__  # noqa: B009
_set_kind = getattr(ResourceRef, "kind").__set__  # noqa: B009
_set_namespace = getattr(ResourceRef, "namespace").__set__  # noqa: B009
_set_name = getattr(ResourceRef, "name").__set__  # noqa: B009
_set_ref = getattr(Versioned, "ref").__set__  # noqa: B009
_set_rv = getattr(Versioned, "rv").__set__  # noqa: B009


def _entries(value: Any) -> tuple[UpstreamEntry, ...]:
    """``Upstream.entries``: the generic check's result, without its per-item calls."""
    if type(value) is not list:
        raise v.Invalid("Input should be a valid array")
    if len(value) > MAX_ITEMS:
        raise v.Invalid(f"List should have at most {MAX_ITEMS} items, not {len(value)}")
    out: list[UpstreamEntry] = []
    append = out.append
    for i, e in enumerate(value):
        if type(e) is dict:
            seq = e.get("seq")
            topic = e.get("topic")
            if (
                type(seq) is int
                and 0 <= seq <= MAX_SEQ
                and type(topic) is str
                and len(topic) <= MAX_NAME_CHARS
                and "payload" in e
            ):
                entry = _new(UpstreamEntry)
                _set_seq(entry, seq)
                _set_topic(entry, topic)
                _set_payload(entry, e["payload"])
                append(entry)
                continue
        try:
            append(_ENTRY(e))
        except v.Invalid as err:
            err.loc.insert(0, i)
            raise
    return tuple(out)


def _versioned(value: Any) -> tuple[Versioned, ...]:
    """``Held.items`` / ``Ack.items``: the generic check's result, faster."""
    if type(value) is not list:
        raise v.Invalid("Input should be a valid array")
    if len(value) > MAX_ITEMS:
        raise v.Invalid(f"List should have at most {MAX_ITEMS} items, not {len(value)}")
    out: list[Versioned] = []
    append = out.append
    limit = MAX_REF_PART_CHARS
    for i, item in enumerate(value):
        if type(item) is dict:
            ref = item.get("ref")
            rv = item.get("rv")
            if type(ref) is dict and type(rv) is int:
                kind = ref.get("kind")
                ns = ref.get("namespace")
                name = ref.get("name")
                if (
                    type(kind) is str
                    and type(ns) is str
                    and type(name) is str
                    and len(kind) <= limit
                    and len(ns) <= limit
                    and len(name) <= limit
                ):
                    r = _new(ResourceRef)
                    _set_kind(r, kind)
                    _set_namespace(r, ns)
                    _set_name(r, name)
                    held = _new(Versioned)
                    _set_ref(held, r)
                    _set_rv(held, rv)
                    append(held)
                    continue
        try:
            append(_VERSIONED(item))
        except v.Invalid as err:
            err.loc.insert(0, i)
            raise
    return tuple(out)


_ENTRY = v.record(UpstreamEntry)
_VERSIONED = v.record(Versioned)
_FAST_LISTS: dict[tuple[str, str], v.Check] = {
    ("upstream", "entries"): _entries,
    ("held", "items"): _versioned,
    ("ack", "items"): _versioned,
}


def _table(types: dict[str, type[Message]]) -> dict[str, tuple[type[Message], v.Plan]]:
    out: dict[str, tuple[type[Message], v.Plan]] = {}
    for tag, cls in types.items():
        plan = tuple(
            (name, _FAST_LISTS.get((tag, name), check), required)
            for name, check, required in v.plan_of(cls)
        )
        out[tag] = (cls, plan)
    return out


_UP = _table(UP_TYPES)
_DOWN = _table(DOWN_TYPES)
