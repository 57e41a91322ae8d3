"""One relayed log stream: chunks of lines a node sends (``logs_data``) for one reader.

The session feeds it without awaiting; the reader iterates it. The buffer is bounded: a reader
that falls more than ``max_chunks`` behind ends the stream with :class:`TooManyRequests` (the
session then tells the node ``logs_cancel``), so a slow HTTP client cannot grow cloud memory.
A link that closes ends the stream with :class:`LinkClosed`.

This module must not send frames or know about the link.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from edgeweave.errors import EdgeweaveError, TooManyRequests


class LogStream:
    def __init__(self, stream_id: str, max_chunks: int) -> None:
        self.stream_id = stream_id
        self._max_chunks = max_chunks
        self._chunks: deque[list[str]] = deque()
        self._ready = asyncio.Event()
        self._error: EdgeweaveError | None = None
        self.finished = False  # eof seen, or failed

    def feed(self, lines: list[str], eof: bool) -> bool:
        """Add a chunk; False when the stream overflowed (and is now failed)."""
        if self.finished:
            return True
        if lines:
            if len(self._chunks) >= self._max_chunks:
                self.fail(TooManyRequests("log reader too slow: stream ended"))
                return False
            self._chunks.append(lines)
        if eof:
            self.finished = True
        self._ready.set()
        return True

    def fail(self, error: EdgeweaveError) -> None:
        if not self.finished:
            self._error = error
            self.finished = True
            self._ready.set()

    async def __aiter__(self) -> AsyncIterator[list[str]]:
        while True:
            if self._chunks:
                yield self._chunks.popleft()
                continue
            if self.finished:
                if self._error is not None:
                    raise self._error
                return
            self._ready.clear()
            await self._ready.wait()
