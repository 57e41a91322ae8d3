"""Supervisor: named tasks, cancel on exit, crash handling, restart with backoff."""

from __future__ import annotations

import asyncio
import inspect
import random

import pytest

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.clock import ManualClock
from edgeweave.aio.tasks import open_supervisor


async def test_tasks_are_named_and_cancelled_when_the_block_ends() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with open_supervisor("agent") as sup:
        task = sup.start(forever(), name="heartbeat")
        await started.wait()
        assert task.get_name() == "agent/heartbeat"
        assert sup.statistics().running == ("heartbeat",)
    assert cancelled.is_set() and task.cancelled()
    assert sup.statistics().running == ()


async def test_finished_tasks_are_forgotten_and_names_can_be_reused() -> None:
    async def quick() -> int:
        return 1

    async with open_supervisor("s") as sup:
        await sup.start(quick(), name="once")
        await sup.start(quick, name="once")
        stats = sup.statistics()
    assert stats.started == 2 and stats.crashed == 0 and stats.running == ()


async def test_duplicate_live_name_is_refused_and_the_coroutine_closed() -> None:
    async with open_supervisor("s") as sup:
        sup.start(asyncio.Event().wait(), name="x")
        coro = asyncio.sleep(0)
        with pytest.raises(ValueError, match="already runs"):
            sup.start(coro, name="x")
        assert inspect.getcoroutinestate(coro) == "CORO_CLOSED"  # no "never awaited" warning


async def test_crash_cancels_the_group_and_the_block_and_is_raised() -> None:
    other_cancelled = asyncio.Event()

    async def other() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            other_cancelled.set()
            raise

    async def boom() -> None:
        raise RuntimeError("boom")

    body_reached_end = False
    with pytest.raises(RuntimeError, match="boom"):
        async with open_supervisor("s") as sup:
            sup.start(other(), name="other")
            sup.start(boom(), name="boom")
            await asyncio.Event().wait()  # cancelled by the crash
            body_reached_end = True
    assert not body_reached_end and other_cancelled.is_set()
    assert sup.statistics().crashed == 1
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_body_exception_propagates_and_tasks_are_still_cancelled() -> None:
    with pytest.raises(KeyError):
        async with open_supervisor("s") as sup:
            task = sup.start(asyncio.Event().wait(), name="w")
            await asyncio.sleep(0)
            raise KeyError("body")
    assert task.cancelled()


async def test_supervisor_cannot_be_entered_twice() -> None:
    async with open_supervisor("s") as sup:
        with pytest.raises(RuntimeError, match="already entered"):
            await sup.__aenter__()


async def test_outside_cancellation_propagates_after_cleanup() -> None:
    inner_started = asyncio.Event()
    child_cancelled = asyncio.Event()

    async def child() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            child_cancelled.set()
            raise

    async def host() -> None:
        async with open_supervisor("h") as sup:
            sup.start(child(), name="c")
            inner_started.set()
            await asyncio.Event().wait()

    host_task = asyncio.create_task(host(), name="host")
    await inner_started.wait()
    host_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await host_task
    assert child_cancelled.is_set()


async def test_crashing_task_is_restarted_with_backoff() -> None:
    clock = ManualClock()
    runs = 0
    healthy = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ConnectionError(f"crash {runs}")
        healthy.set()
        await asyncio.Event().wait()

    backoff = Backoff(base_s=1, cap_s=4, rng=random.Random(5))
    async with open_supervisor("s", clock=clock) as sup:
        sup.start(flaky, name="link", restart=True, backoff=backoff)
        await clock.wait_sleepers(1)  # parked after crash 1
        assert runs == 1 and backoff.attempt == 1
        clock.advance(4)
        await clock.wait_sleepers(1)  # parked after crash 2
        assert runs == 2 and backoff.attempt == 2
        clock.advance(4)
        await healthy.wait()
        stats = sup.statistics()
        assert stats.crashed == 2 and stats.restarts == 2 and stats.running == ("link",)


async def test_restart_needs_a_function_not_a_coroutine() -> None:
    async with open_supervisor("s") as sup:
        with pytest.raises(TypeError, match="function"):
            sup.start(asyncio.sleep(0), name="x", restart=True)


async def test_start_outside_the_block_is_refused() -> None:
    async with open_supervisor("s") as sup:
        pass
    with pytest.raises(RuntimeError, match="not running"):
        sup.start(asyncio.sleep(0), name="late")
