"""ManualClock: sleepers wake only when a test advances time."""

from __future__ import annotations

import asyncio

import pytest

from edgeweave.aio.clock import Clock, ManualClock, SystemClock


async def test_manual_clock_wakes_sleepers_whose_deadline_passed() -> None:
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(label: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(label)

    short = asyncio.create_task(sleeper("short", 1), name="short")
    long = asyncio.create_task(sleeper("long", 5), name="long")
    await clock.wait_sleepers(2)
    clock.advance(0.5)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.5)
    await short
    assert woke == ["short"] and not long.done()
    clock.advance(10)
    await long
    assert woke == ["short", "long"]
    assert clock.monotonic() == 11


async def test_manual_clock_wall_time_moves_with_monotonic() -> None:
    clock = ManualClock(monotonic=100.0, time=1_000.0)
    clock.advance(2.5)
    assert clock.monotonic() == 102.5
    assert clock.time() == 1_002.5


async def test_cancelled_sleeper_is_skipped() -> None:
    clock = ManualClock()
    task = asyncio.create_task(clock.sleep(1), name="sleeper")
    await clock.wait_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    clock.advance(2)  # must not touch the cancelled future


async def test_zero_sleep_returns_without_advancing() -> None:
    clock = ManualClock()
    await clock.sleep(0)
    assert clock.sleepers == 0


def test_manual_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(-1)


async def test_system_clock_satisfies_the_protocol() -> None:
    clock: Clock = SystemClock()
    before = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= before and clock.time() > 1_600_000_000
