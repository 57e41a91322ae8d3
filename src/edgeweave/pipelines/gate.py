"""The repo store's write gate: writers share it, garbage collection holds it alone.

GC must never delete a chunk a write is about to reference, so it waits for running writes
and holds new ones back while it runs. Pure asyncio: no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteGate:
    """Writers share, GC is exclusive (and holds new writers back while it waits)."""

    def __init__(self) -> None:
        self._writers = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()
        self._gc = asyncio.Lock()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._writers += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0:
                self._idle.set()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._gc:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()
