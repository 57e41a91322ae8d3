"""Injected time: ``Clock`` with the real ``SystemClock`` and a test ``ManualClock``.

Code that waits or measures time receives a ``Clock`` instead of calling ``time`` or
``asyncio.sleep`` directly, so tests drive timeouts by advancing a ``ManualClock`` rather than by
sleeping (trio's ``MockClock`` in spirit, without replacing the event loop's clock: only code
that sleeps through the ``Clock`` sees manual time).

This module must not start tasks or keep global state.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time as _time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and deadlines)."""
        ...

    def time(self) -> float:
        """Unix seconds (wall clock, for timestamps on the wire and in stores)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when a test calls ``advance``.

    ``sleep(s)`` suspends until ``advance`` moves the clock to or past the sleeper's deadline.
    ``wait_sleepers(n)`` lets a test wait until the code under test is parked in ``sleep``
    (waiting on a condition, not on real time).
    """

    def __init__(self, monotonic: float = 0.0, time: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._wall_offset = time - monotonic
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._watchers: list[tuple[int, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._monotonic + self._wall_offset

    @property
    def sleepers(self) -> int:
        """How many ``sleep`` calls are waiting."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wakeup: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._monotonic + seconds, next(self._order), wakeup))
        self._notify_watchers()
        # a cancelled sleeper leaves a done future in the heap; advance() skips it
        await wakeup

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._monotonic += seconds
        while self._sleepers and self._sleepers[0][0] <= self._monotonic:
            _, _, wakeup = heapq.heappop(self._sleepers)
            if not wakeup.done():
                wakeup.set_result(None)

    async def wait_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` sleepers are waiting."""
        if self.sleepers >= count:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append((count, ready))
        try:
            await ready
        finally:
            self._watchers = [(n, f) for n, f in self._watchers if f is not ready]

    def _notify_watchers(self) -> None:
        waiting = self.sleepers
        for count, ready in self._watchers:
            if waiting >= count and not ready.done():
                ready.set_result(None)
