"""Supervised, named background tasks and bounded queues.

``open_supervisor(name)`` is the one way components start background work. Semantics:

- ``start(coro, name=...)`` runs a task named ``"<supervisor>/<name>"``; a live task's name is
  unique within its supervisor.
- Leaving the ``async with`` block (normally or by an exception) cancels every task still
  running and waits for all of them: nothing outlives the block.
- A task that returns is simply forgotten. A task cancelled by someone else is not a failure.
- A task started with ``restart=True`` (given a function returning a fresh coroutine) that
  crashes is logged and started again after ``backoff.next_delay()`` on the supervisor's clock;
  the backoff resets after a run that lasted at least ``backoff.cap_s``. It never fails the group.
- Any other task that crashes is logged, every other task is cancelled, and so is the body of
  the ``async with`` block; leaving the block then raises that task's exception (unchanged, not
  wrapped in a group). An exception raised by the body itself takes precedence.

``BoundedQueue`` wraps ``asyncio.Queue`` so every queue has a size and says when it is full.

This module must not know what the tasks do, nor import anything above ``edgeweave.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.errors import TooManyRequests

logger = logging.getLogger(__name__)

T = TypeVar("T")
TaskTarget = Coroutine[Any, Any, object] | Callable[[], Coroutine[Any, Any, object]]


@dataclass(frozen=True)
class SupervisorStatistics:
    name: str
    running: tuple[str, ...]
    """Names (without the supervisor prefix) of the tasks alive now."""
    started: int
    crashed: int
    """Crashes seen, including those of restarted tasks."""
    restarts: int


@contextlib.asynccontextmanager
async def open_supervisor(name: str, *, clock: Clock | None = None) -> AsyncIterator[Supervisor]:
    """A supervisor whose tasks all end when the block ends (see the module docstring)."""
    supervisor = Supervisor(name, clock=clock)
    async with supervisor:
        yield supervisor


class Supervisor:
    """Use through ``open_supervisor``."""

    def __init__(self, name: str, *, clock: Clock | None = None) -> None:
        self.name = name
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._tasks: dict[str, asyncio.Task[object]] = {}
        self._host: asyncio.Task[Any] | None = None
        self._host_cancelled = False
        self._closing = False
        self._failure: BaseException | None = None
        self._started = 0
        self._crashed = 0
        self._restarts = 0

    def start(
        self,
        target: TaskTarget,
        *,
        name: str,
        restart: bool = False,
        backoff: Backoff | None = None,
    ) -> asyncio.Task[object]:
        """Run ``target`` (a coroutine, or a function returning one) as a supervised task.

        ``restart=True`` needs a function, since a coroutine runs only once.
        """
        coro: Coroutine[Any, Any, object] | None = None
        try:
            if self._host is None or self._closing or self._failure is not None:
                raise RuntimeError(f"supervisor {self.name} is not running; cannot start {name}")
            if name in self._tasks:
                raise ValueError(f"supervisor {self.name} already runs a task named {name!r}")
            if restart:
                if asyncio.iscoroutine(target):
                    raise TypeError("restart=True needs a function that returns a new coroutine")
                assert callable(target)
                coro = self._run_restarting(name, target, backoff or Backoff())
            else:
                coro = target() if callable(target) else target
            task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}/{name}")
        except BaseException:
            for c in (coro, target):
                if asyncio.iscoroutine(c):
                    c.close()  # never-awaited coroutines warn, and warnings are errors
            raise
        self._tasks[name] = task
        self._started += 1
        task.add_done_callback(partial(self._on_done, name))
        return task

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            name=self.name,
            running=tuple(n for n, t in self._tasks.items() if not t.done()),
            started=self._started,
            crashed=self._crashed,
            restarts=self._restarts,
        )

    async def __aenter__(self) -> Supervisor:
        if self._host is not None:
            raise RuntimeError(f"supervisor {self.name} was already entered")
        self._host = asyncio.current_task()
        if self._host is None:
            raise RuntimeError("a supervisor must be entered from inside a task")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._closing = True
        outside_cancel = False
        while pending := [t for t in self._tasks.values() if not t.done()]:
            for task in pending:
                task.cancel()
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                outside_cancel = True  # keep waiting: nothing may outlive the block
        host = self._host
        assert host is not None
        ours = False
        if self._host_cancelled:
            # our own cancellation of the body (after a crash) is consumed here
            ours = host.uncancel() == 0 and exc_type is asyncio.CancelledError
        if outside_cancel:
            raise asyncio.CancelledError
        if exc_type is not None and not ours:
            return False
        if self._failure is not None:
            raise self._failure from None
        return False

    def _on_done(self, name: str, task: asyncio.Task[object]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        self._crashed += 1
        logger.error("task %s crashed", task.get_name(), exc_info=error)
        if self._failure is None:
            self._failure = error
        if not self._closing:
            for other in self._tasks.values():
                other.cancel()
            if self._host is not None and not self._host.done() and not self._host_cancelled:
                self._host_cancelled = True
                self._host.cancel()

    async def _run_restarting(
        self, name: str, factory: Callable[[], Coroutine[Any, Any, object]], backoff: Backoff
    ) -> None:
        while True:
            started_at = self._clock.monotonic()
            try:
                await factory()
            except Exception:
                self._crashed += 1
                logger.exception("task %s/%s crashed; restarting it", self.name, name)
            else:
                return
            if self._clock.monotonic() - started_at >= backoff.cap_s:
                backoff.reset()
            await self._clock.sleep(backoff.next_delay())
            self._restarts += 1


@dataclass(frozen=True)
class QueueStatistics:
    size: int
    max_size: int
    put: int
    """Items accepted."""
    got: int
    refused: int
    """``put_nowait`` calls refused because the queue was full."""
    dropped: int
    """Items evicted by ``put_nowait_dropping_oldest``."""


class BoundedQueue(Generic[T]):
    """A FIFO with a hard size; full is an error (``TooManyRequests``), never unbounded growth."""

    def __init__(self, max_size: int, *, name: str = "queue") -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be > 0, not {max_size}")
        self.name = name
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=max_size)
        self._put = 0
        self._got = 0
        self._refused = 0
        self._dropped = 0

    @property
    def max_size(self) -> int:
        return self._queue.maxsize

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()

    def full(self) -> bool:
        return self._queue.full()

    def put_nowait(self, item: T) -> None:
        """Enqueue, or raise ``TooManyRequests`` when full."""
        if self._queue.full():
            self._refused += 1
            raise TooManyRequests(f"queue {self.name} is full ({self.max_size} items); retry later")
        self._queue.put_nowait(item)
        self._put += 1

    def put_nowait_dropping_oldest(self, item: T) -> T | None:
        """Enqueue; when full, evict and return the oldest item (for droppable streams)."""
        evicted: T | None = None
        if self._queue.full():
            evicted = self._queue.get_nowait()
            self._dropped += 1
        self._queue.put_nowait(item)
        self._put += 1
        return evicted

    async def put(self, item: T) -> None:
        """Enqueue, waiting for room."""
        await self._queue.put(item)
        self._put += 1

    async def get(self) -> T:
        item = await self._queue.get()
        self._got += 1
        return item

    def get_nowait(self) -> T:
        """The oldest item; raises ``asyncio.QueueEmpty`` when there is none."""
        item = self._queue.get_nowait()
        self._got += 1
        return item

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            size=self._queue.qsize(),
            max_size=self._queue.maxsize,
            put=self._put,
            got=self._got,
            refused=self._refused,
            dropped=self._dropped,
        )
