"""Scheduled workflows: a run at each tick of a Workflow's ``schedule`` (one task per process).

The task follows ``Workflow`` objects (a list, then a watch from the version read before
it) and keeps, per workflow with a schedule, the next tick: the first one after the
``status.lastScheduledTime`` it last fired at (the creation time before the first). It sleeps
until the earliest tick or until a workflow changes — never longer, never polling — and at a
tick starts a run named after the tick (``etl-20250101-020000``), so replicas sharing a
PostgreSQL store that fire the same tick create one run. Ticks missed while the cloud was
down are not replayed one by one: the first tick due is fired once on start and the next
one is counted from now. A schedule that cannot be parsed is skipped with a warning (the API
refuses one when the workflow is written). Times are UTC (``cron.py``).

Must not run steps or know HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgeweave.cloud.pipelines.workflows import WORKFLOW, Workflows, start_scheduled, update_status
from edgeweave.cloud.store.base import JSONObject, Store, WatchFilter
from edgeweave.errors import EdgeweaveError, Gone, StoreError
from edgeweave.pipelines.cron import Schedule
from edgeweave.pipelines.dagspec import checked_workflow, workflow_schedule

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass
class _Entry:
    generation: int
    schedule: Schedule
    next_at: datetime


class WorkflowSchedules:
    def __init__(
        self, store: Store, workflows: Workflows, *, now: Callable[[], datetime] = _now
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._now = now
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """Follow the workflows and fire their ticks until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._follow(), name="workflow-feed")
            tasks.create_task(self._fire(), name="workflow-ticks")

    async def _fire(self) -> None:
        while True:
            self._changed.clear()  # a change while ticks fire makes the wait below return
            now = self._now()
            for key, entry in list(self._entries.items()):
                if entry.next_at <= now:
                    tick = entry.next_at
                    entry.next_at = entry.schedule.next_after(max(now, tick))
                    await self._tick(key, tick)
            wait_s = None
            if self._entries:
                soonest = min(e.next_at for e in self._entries.values())
                wait_s = max(0.0, (soonest - self._now()).total_seconds())
            try:
                async with asyncio.timeout(wait_s):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _tick(self, key: tuple[str, str], tick: datetime) -> None:
        namespace, name = key
        stamp = tick.isoformat().replace("+00:00", "Z")

        def change(status: dict[str, Any]) -> None:
            status["lastScheduledTime"] = stamp

        try:
            await update_status(self._store, WORKFLOW, namespace, name, change)
        except StoreError as e:
            log.warning("workflow %s/%s: cannot record its tick: %s", namespace, name, e)
        await start_scheduled(self._workflows, namespace, name, tick)

    async def _follow(self) -> None:
        while True:
            try:
                since = await self._store.current_resource_version()
                listed = await self._store.list(WORKFLOW)
                seen = set()
                for obj in listed.items:
                    seen.add(self._apply("ADDED", obj))
                for key in set(self._entries) - seen:
                    del self._entries[key]
                self._changed.set()
                async with self._store.open_watch(since, WatchFilter(kind=WORKFLOW)) as watch:
                    async for event in watch:
                        self._apply(event.type, event.object)
                        self._changed.set()
                return
            except Gone:
                log.warning("workflow schedules: the watch fell behind; relisting")
            except StoreError as e:
                log.warning("workflow schedules: watch failed (%s); retrying", e)
                await asyncio.sleep(RETRY_DELAY_S)

    def _apply(self, event_type: str, obj: JSONObject) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        spec = obj.get("spec") or {}
        if event_type == "DELETED" or not spec.get("schedule"):
            self._entries.pop(key, None)
            return key
        generation = int(meta.get("generation") or 0)
        current = self._entries.get(key)
        if current is not None and current.generation == generation:
            return key  # a status write (ours): the schedule did not change
        try:
            schedule = workflow_schedule(checked_workflow(obj, f"Workflow {key[0]}/{key[1]}"))
        except EdgeweaveError as e:
            log.warning("workflow %s/%s: schedule skipped: %s", *key, e.message)
            self._entries.pop(key, None)
            return key
        if schedule is None:
            self._entries.pop(key, None)
            return key
        status = obj.get("status") or {}
        last = (
            _parse_time(status.get("lastScheduledTime"))
            or _parse_time(meta.get("creationTimestamp"))
            or self._now()
        )
        self._entries[key] = _Entry(generation, schedule, schedule.next_after(last))
        return key
