"""Splitting a watch stream (``application/x-ndjson``) into events, with a line size limit.

A watch answer is one JSON object per line: ``{"type": "ADDED|MODIFIED|DELETED|BOOKMARK",
"object": {...}}``. Bytes arrive in arbitrary chunks; :class:`EventDecoder` keeps the partial
line and refuses one that grows past ``max_line_bytes`` instead of buffering without bound.
Pure: no sockets.
"""

from __future__ import annotations

import json
from typing import Any

from edgeweave.errors import PayloadTooLarge, ProtocolError

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})


class EventDecoder:
    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events completed by ``chunk``."""
        events = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._partial += chunk[start:end]
            self._check_size()
            line = bytes(self._partial)
            self._partial.clear()
            start = end + 1
            if line.strip():
                events.append(parse_event(line))
        self._partial += chunk[start:]
        self._check_size()
        return events

    def close(self) -> list[dict[str, Any]]:
        """The last event if the stream ended without a newline."""
        line, self._partial = bytes(self._partial), bytearray()
        return [parse_event(line)] if line.strip() else []

    def _check_size(self) -> None:
        if len(self._partial) > self.max_line_bytes:
            raise PayloadTooLarge(
                f"a watch event is larger than {self.max_line_bytes} bytes; stream abandoned"
            )


def parse_event(line: bytes) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"watch stream: a line is not JSON: {line[:80]!r}") from e
    if (
        not isinstance(event, dict)
        or event.get("type") not in EVENT_TYPES
        or not isinstance(event.get("object"), dict)
    ):
        raise ProtocolError(f"watch stream: not a {{type, object}} event: {line[:80]!r}")
    return event
