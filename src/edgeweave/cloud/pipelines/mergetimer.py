"""The Merger timer: completes merges whose ``timeoutSeconds`` passed with no delivery since.

A Merger with ``complete: {timeoutSeconds: T}`` is complete T seconds after the first
delivery (per key) even when no other node ever delivers. Deliveries evaluate completion as
they arrive; this timer covers the silence after them. One timer runs in the cloud's
pipeline worker (a supervised task, cancelled when the worker closes). It learns each
Merger's next deadline from the Pipeline objects the store feed sees (so deadlines survive a
restart: they are times in ``status.merger``) and from each evaluation, sleeps until the
earliest, then asks :meth:`Mergers.check` to evaluate that Merger — which marks it complete,
writes the merged view and wakes the pipelines downstream.

Must not evaluate completion itself or touch repos (the Mergers do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.cloud.pipelines.mergespec import check_merger
from edgeweave.cloud.pipelines.mergestate import MergeState
from edgeweave.cloud.store.base import JSONObject
from edgeweave.errors import EdgeweaveError

log = logging.getLogger(__name__)

Check = Callable[[str, str], Awaitable[MergeState | None]]  # namespace, name
RETRY_S = 5.0  # after a failed evaluation (the store away)


class MergeTimer:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._due: dict[tuple[str, str], float] = {}  # (namespace, name) -> wall time
        self._wake = asyncio.Event()

    def deadlines(self) -> dict[tuple[str, str], float]:
        return dict(self._due)

    def upsert(self, obj: JSONObject) -> None:
        """A Pipeline object as stored (a Merger or not)."""
        meta = obj.get("metadata") or {}
        ref = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        pattern = (obj.get("spec") or {}).get("pattern")
        if not isinstance(pattern, dict) or "merger" not in pattern:
            self.remove(*ref)
            return
        try:
            spec = check_merger(pattern.get("merger"))
        except EdgeweaveError:
            self.remove(*ref)
            return
        state = MergeState.load((obj.get("status") or {}).get("merger"), spec)
        self.merged(ref[0], ref[1], state)

    def merged(self, namespace: str, name: str, state: MergeState) -> None:
        """A Merger was evaluated: its next deadline."""
        when = state.next_deadline()
        ref = (namespace, name)
        if when is None:
            self._due.pop(ref, None)
        elif self._due.get(ref) != when:
            self._due[ref] = when
            self._wake.set()

    def remove(self, namespace: str, name: str) -> None:
        self._due.pop((namespace, name), None)

    async def run(self, check: Check) -> None:
        """Until cancelled; ``check`` evaluates a Merger (:meth:`Mergers.check`)."""
        while True:
            self._wake.clear()
            now = self._clock.time()
            due = [ref for ref, when in self._due.items() if when <= now]
            for namespace, name in due:
                self._due.pop((namespace, name), None)
                try:
                    state = await check(namespace, name)
                except EdgeweaveError as e:
                    log.warning("merger %s: cannot evaluate its timeout: %s", name, e.message)
                    self._due[(namespace, name)] = now + RETRY_S
                    continue
                if state is not None:
                    self.merged(namespace, name, state)
                if self._due.get((namespace, name), now + 1) <= now:  # never a busy loop
                    self._due[(namespace, name)] = now + RETRY_S
            if not self._due:
                await self._wake.wait()
                continue
            delay = max(0.0, min(self._due.values()) - self._clock.time())
            await self._sleep_or_wake(delay)

    async def _sleep_or_wake(self, delay_s: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(delay_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([sleeper, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(sleeper, waker, return_exceptions=True)
