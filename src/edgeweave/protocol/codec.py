"""The one codec of the link: messages to JSON text and back (docs/design/edge-link.md §3).

This is the only place bytes become messages. ``decode`` checks the size before parsing,
validates in strict mode (no ``"1"`` for an int, no ``1`` for a bool) and accepts only the
message types the peer may send in that direction: the cloud decodes ``direction="up"``
(edge→cloud), the agent ``direction="down"`` (cloud→edge). Every failure is a
``PayloadTooLarge`` or a ``ProtocolError`` whose message names the offending field path, such as
``entries[3].seq`` — never a foreign exception.

It must not do I/O, log, or interpret what a message means.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, from_json

from edgeweave.errors import PayloadTooLarge, ProtocolError
from edgeweave.protocol.messages import (
    DOWN_TYPES,
    UP_TYPES,
    DownMessage,
    Message,
    UpMessage,
)

DEFAULT_MAX_FRAME_BYTES = 1 << 20
"""1 MiB, the default ``link.max_frame_bytes``."""

Direction = Literal["up", "down"]

_UP: TypeAdapter[UpMessage] = TypeAdapter(UpMessage)
_DOWN: TypeAdapter[DownMessage] = TypeAdapter(DownMessage)
_UTF8_MAX_BYTES_PER_CHAR = 4
_DIRECTION_WORDS = {"up": "edge→cloud", "down": "cloud→edge"}


def encode(msg: Message) -> str:
    """Compact JSON text of ``msg`` (one frame)."""
    try:
        return msg.model_dump_json()
    except PydanticSerializationError as e:
        raise ProtocolError(f"cannot encode {msg.type} message: {e}") from e


@overload
def decode(data: str | bytes, *, direction: Literal["up"], max_bytes: int = ...) -> UpMessage: ...
@overload
def decode(
    data: str | bytes, *, direction: Literal["down"], max_bytes: int = ...
) -> DownMessage: ...
def decode(
    data: str | bytes, *, direction: Direction, max_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> Message:
    """The message in ``data``, as sent by the peer of ``direction``.

    ``direction="up"``: a frame an edge node sent (the cloud decodes these);
    ``direction="down"``: a frame the cloud sent (the agent decodes these).
    """
    _check_size(data, max_bytes)
    adapter: TypeAdapter[Any]
    if direction == "up":
        adapter = _UP
    elif direction == "down":
        adapter = _DOWN
    else:
        raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
    try:
        msg: Message = adapter.validate_json(data, strict=True)
    except ValidationError as e:
        raise ProtocolError(_describe(e, direction)) from None
    except UnicodeError as e:  # a str holding lone surrogates cannot be UTF-8
        raise ProtocolError(f"frame is not valid UTF-8 text: {e}") from None
    if _may_hold_non_finite(data):
        _refuse_non_finite(data)
    return msg


def _may_hold_non_finite(data: str | bytes) -> bool:
    # The parser accepts NaN/Infinity inside raw payloads; they are not JSON and would poison
    # whatever stores them. A substring search is cheap; the strict re-parse runs only when a
    # token (or a string containing one) is present.
    if isinstance(data, str):
        return "NaN" in data or "Infinity" in data
    raw = bytes(data)
    return b"NaN" in raw or b"Infinity" in raw


def _refuse_non_finite(data: str | bytes) -> None:
    try:
        from_json(data, allow_inf_nan=False)
    except ValueError as e:
        raise ProtocolError(f"frame holds a non-finite number (NaN/Infinity): {e}") from None


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


def _describe(error: ValidationError, direction: Direction) -> str:
    errors = error.errors(include_url=False, include_input=False)
    first = errors[0]
    kind = first["type"]
    ctx = first.get("ctx") or {}
    if kind == "json_invalid":
        return f"frame is not valid JSON: {ctx.get('error', first['msg'])}"
    if kind in ("dict_type", "model_type", "model_attributes_type") and not first["loc"]:
        return "frame is not a JSON object"
    if kind == "union_tag_not_found":
        return "message has no 'type' field"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        other = "down" if direction == "up" else "up"
        table = DOWN_TYPES if direction == "up" else UP_TYPES
        if tag in table:
            return (
                f"message type {tag!r} is sent {_DIRECTION_WORDS[other]} only; "
                f"not accepted {_DIRECTION_WORDS[direction]}"
            )
        return f"unknown message type {tag!r}"
    loc = first["loc"]
    tag, path = (str(loc[0]), _path(loc[1:])) if loc else ("", "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"bad {tag} message: field {path or '(message)'}: {first['msg']}{more}"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
