"""An in-memory link pair: the link seam's twin for unit tests (no sockets, no TLS).

Frames over ``max_frame_bytes`` close both ends with 1009, as the WebSocket link does.
"""

from __future__ import annotations

import asyncio

from edgeweave.errors import LinkBroken, LinkClosed

_CLOSE = object()


class MemoryLink:
    def __init__(self, max_frame_bytes: int) -> None:
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self.peer: MemoryLink | None = None
        self.max_frame_bytes = max_frame_bytes
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def _error(self) -> LinkClosed | LinkBroken:
        text = f"link closed ({self.close_code} {self.close_reason})"
        if self.close_code == 1000:
            return LinkClosed(text, close_code=self.close_code)
        return LinkBroken(text, close_code=self.close_code)

    async def send(self, frame: str) -> None:
        if self.closed or self.peer is None:
            raise self._error()
        if len(frame.encode()) > self.max_frame_bytes:
            await self.aclose(1009, "frame too large")
            raise self._error()
        self.peer._inbox.put_nowait(frame)

    async def recv(self) -> str:
        if self.closed and self._inbox.empty():
            raise self._error()
        item = await self._inbox.get()
        if item is _CLOSE:
            raise self._error()
        assert isinstance(item, str)
        return item

    def _mark_closed(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._inbox.put_nowait(_CLOSE)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        self._mark_closed(code, reason)
        if self.peer is not None:
            self.peer._mark_closed(code, reason)


def memory_link_pair(max_frame_bytes: int = 1 << 20) -> tuple[MemoryLink, MemoryLink]:
    a, b = MemoryLink(max_frame_bytes), MemoryLink(max_frame_bytes)
    a.peer, b.peer = b, a
    return a, b
