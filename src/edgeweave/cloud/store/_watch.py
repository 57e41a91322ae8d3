"""Change-log watches, shared by the store backends.

A watch is a cursor over the change log: it reads entries with ``rv > last`` in bounded
batches through a backend-supplied ``fetch`` function, turns the ones that match its
:class:`~edgeweave.cloud.store.base.WatchFilter` into events, and when it has caught up waits
for the store's :class:`Notifier` (set after every commit the store learns of), or for the
poll interval to pass. Because the log, not the notification, is the source of truth, a lost
notification only delays an event, never drops it.

Must not talk to a database itself and must not start tasks: a watch does its work inside
the consumer's ``__anext__``, so leaving it leaves nothing running.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import cast

from edgeweave.cloud.store._objects import decode_json, gone
from edgeweave.cloud.store.base import EventType, WatchEvent, WatchFilter

# (rv, type, kind, namespace, name, json)
ChangeRow = tuple[int, str, str, str, str, str]
# fetch(after_rv, max_rows) -> (compacted_from, rows with rv > after_rv in rv order)
FetchChanges = Callable[[int, int], Awaitable[tuple[int, Sequence[ChangeRow]]]]
WATCH_BATCH_ROWS = 1000
MAX_SKIPPED_CHANGES = 1000
"""A watch of some kinds is woken at least this often by other kinds' changes, so its cursor
keeps up with the log and compaction never overtakes it."""


class _Subscriber:
    __slots__ = ("event", "kinds", "skipped")

    def __init__(self, kinds: frozenset[str] | None) -> None:
        self.event = asyncio.Event()
        self.kinds = kinds
        self.skipped = 0


class Notifier:
    """Wakes the open watches of one store after a commit; closing it ends them all.

    A backend that knows which kinds a commit changed passes them, and a watch of some kinds
    sleeps through the others' changes (see :data:`MAX_SKIPPED_CHANGES`)."""

    def __init__(self) -> None:
        self._subscribers: dict[asyncio.Event, _Subscriber] = {}
        self.closed = False

    def subscribe(self, kinds: frozenset[str] | None = None) -> asyncio.Event:
        """The event set for changes of ``kinds`` (None: of every kind)."""
        sub = _Subscriber(kinds)
        self._subscribers[sub.event] = sub
        return sub.event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._subscribers.pop(event, None)

    def notify(self, kinds: Collection[str] | None = None, changes: int = 1) -> None:
        """``changes`` changes were committed, of ``kinds`` (None: unknown, wake every
        watch)."""
        for sub in self._subscribers.values():
            if kinds is None or sub.kinds is None or not sub.kinds.isdisjoint(kinds):
                sub.event.set()
                continue
            sub.skipped += changes
            if sub.skipped >= MAX_SKIPPED_CHANGES:
                sub.skipped = 0
                sub.event.set()

    def close(self) -> None:
        self.closed = True
        self.notify()


class LogWatch:
    """One open watch; iterate it for events. Ends (StopAsyncIteration) when closed; raises
    Gone if compaction overtakes it."""

    def __init__(
        self,
        fetch: FetchChanges,
        notifier: Notifier,
        since: int,
        flt: WatchFilter | None,
        *,
        poll_interval_s: float | None,
        batch_rows: int = WATCH_BATCH_ROWS,
    ) -> None:
        self._fetch = fetch
        self._notifier = notifier
        self._last = since
        self._flt = flt if flt is not None else WatchFilter()
        self._poll_interval_s = poll_interval_s
        self._batch_rows = batch_rows
        self._buffer: deque[WatchEvent] = deque()
        kinds = self._flt.kinds
        if self._flt.kind is not None:
            kinds = frozenset({self._flt.kind}) if kinds is None else kinds & {self._flt.kind}
        self._kinds = kinds
        self._wake = notifier.subscribe(kinds)
        self._closed = False

    @property
    def last_resource_version(self) -> int:
        return self._last

    def close(self) -> None:
        self._closed = True
        self._notifier.unsubscribe(self._wake)
        self._wake.set()

    def __aiter__(self) -> LogWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await self._next(None)
        assert event is not None  # no deadline: it waits for one
        return event

    async def next_event(self, idle_s: float) -> WatchEvent | None:
        """The next event, or None when ``idle_s`` pass without one (the watch stays open,
        nothing is lost); StopAsyncIteration once closed, like iterating."""
        return await self._next(asyncio.get_running_loop().time() + idle_s)

    async def _next(self, deadline: float | None) -> WatchEvent | None:
        while True:
            if self._closed or self._notifier.closed:
                raise StopAsyncIteration
            if self._buffer:
                return self._buffer.popleft()
            # clear before reading: a commit after this point sets it again
            self._wake.clear()
            compacted_from, rows = await self._fetch(self._last, self._batch_rows)
            if self._last < compacted_from:
                raise gone(self._last, compacted_from)
            self._accept(rows)
            if self._buffer or len(rows) >= self._batch_rows:
                continue
            if not await self._sleep(deadline):
                return None

    def _accept(self, rows: Sequence[ChangeRow]) -> None:
        flt = self._flt
        for rv, event_type, kind, namespace, name, text in rows:
            self._last = rv
            if self._kinds is not None and kind not in self._kinds:
                continue
            if flt.namespace is not None and namespace != flt.namespace:
                continue
            if flt.name is not None and name != flt.name:
                continue
            event_kind = cast(EventType, event_type)
            if flt.selector.empty:  # the stored text goes on as it is: decoded if read
                self._buffer.append(WatchEvent(event_kind, None, rv, text=text, kind=kind))
                continue
            obj = decode_json(text)
            if flt.selector.matches(obj.get("metadata", {}).get("labels")):
                self._buffer.append(WatchEvent(event_kind, obj, rv, text=text, kind=kind))

    async def _sleep(self, deadline: float | None) -> bool:
        """Until woken (True), or until the loop's clock reaches ``deadline`` (False)."""
        loop = asyncio.get_running_loop()
        # a timer that sets the same event: no extra task per wait
        timer = (
            None
            if self._poll_interval_s is None
            else loop.call_later(self._poll_interval_s, self._wake.set)
        )
        try:
            if deadline is None:
                await self._wake.wait()
                return True
            try:
                async with asyncio.timeout_at(deadline):  # waiting on an event: safe to cut
                    await self._wake.wait()
            except TimeoutError:
                return False
            return True
        finally:
            if timer is not None:
                timer.cancel()
