"""The agent's background loops survive failures: the link loop, the reconciler, the counts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from edgeweave.aio.backoff import Backoff
from edgeweave.config.edge import LinkSettings
from edgeweave.edge.agent import refresh_counts
from edgeweave.edge.link import LinkSession, LinkState, run_link
from edgeweave.edge.localstatus import StatusFile
from edgeweave.edge.sync import Sync, reconcile_forever
from edgeweave.errors import StoreError
from edgeweave.transport.link import Link

WAIT_S = 2.0


class Stop(BaseException):
    """Ends a loop under test from its injected sleep."""


async def test_the_link_loop_survives_any_exception_and_reconnects() -> None:
    failures: list[BaseException] = [RuntimeError("boom"), KeyError("bug"), ValueError("x")]
    dialled = 0

    @contextlib.asynccontextmanager
    async def dial() -> AsyncIterator[Link]:
        nonlocal dialled
        dialled += 1
        yield cast(Link, object())

    class BrokenSession:
        welcomed = asyncio.Event()

        async def run(self) -> None:
            raise failures[dialled - 1]

    def make_session(link: Link) -> LinkSession:
        return cast(LinkSession, BrokenSession())

    sessions: list[object] = []
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == len(failures):
            raise Stop

    state = LinkState()
    with pytest.raises(Stop):
        await run_link(dial, make_session, LinkSettings(), state, sessions.append, sleep=sleep)
    assert dialled == 3 and len(delays) == 3
    assert state.state == "disconnected" and "x" in state.detail
    assert sessions[-1] is None  # the dead session was withdrawn


async def test_the_link_loop_survives_a_dialer_that_raises() -> None:
    def dial() -> contextlib.AbstractAsyncContextManager[Link]:
        raise TypeError("bad URL")

    async def sleep(delay: float) -> None:
        raise Stop

    state = LinkState()
    with pytest.raises(Stop):
        await run_link(
            dial, lambda link: cast(LinkSession, None), LinkSettings(), state, print, sleep
        )
    assert state.state == "disconnected" and "bad URL" in state.detail


class FakeStore:
    def __init__(self, list_failures: int = 0, count_failures: int = 0) -> None:
        self.list_failures = list_failures
        self.count_failures = count_failures
        self.counts = 0
        self.counted_twice = asyncio.Event()  # so the first count is in the status file

    async def list(self, kind: str) -> list[dict[str, Any]]:
        if self.list_failures:
            self.list_failures -= 1
            raise StoreError("database is locked")
        return [{"kind": kind}]

    async def count(self) -> int:
        if self.count_failures:
            self.count_failures -= 1
            raise StoreError("database is locked")
        self.counts += 1
        if self.counts == 2:
            self.counted_twice.set()
        return 7


async def test_reconcile_retries_after_a_failure_until_it_succeeds_without_a_change() -> None:
    store = FakeStore(list_failures=1)
    sync = Sync(cast(Any, store))
    calls = 0
    done = asyncio.Event()

    async def apply(apps: Any, configmaps: Any, secrets: Any) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("artifact server down")
        done.set()

    quick = Backoff(base_s=0.001, cap_s=0.001, jitter=False)
    task = asyncio.create_task(reconcile_forever(sync, apply, quick), name="test-reconcile")
    try:
        async with asyncio.timeout(WAIT_S):
            await done.wait()  # one store failure, two apply failures, then success
        assert calls == 3 and quick.attempt == 0  # reset after the success
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_status_counts_survive_a_store_error(tmp_path: Path) -> None:
    store = FakeStore(count_failures=2)
    outbox = SimpleNamespace(statistics=lambda: SimpleNamespace(entries=3))
    status = StatusFile(tmp_path)
    task = asyncio.create_task(
        refresh_counts(cast(Any, store), cast(Any, outbox), status, interval_s=0),
        name="test-counts",
    )
    try:
        async with asyncio.timeout(WAIT_S):
            await store.counted_twice.wait()
        assert status.state["objects"] == 7 and status.state["outbox"] == {"entries": 3}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
