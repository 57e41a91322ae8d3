"""run_rounds: a failed round is retried after the backoff delay; a clean one waits for news."""

from __future__ import annotations

import asyncio
import contextlib

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.rounds import run_rounds

WAIT_S = 5.0


async def test_failed_rounds_retry_then_a_clean_round_waits_for_news() -> None:
    wake, backoff = asyncio.Event(), Backoff(base_s=0.001, cap_s=0.001, jitter=False)
    results = [False, False, True]  # two failures, then success
    calls = 0
    called = asyncio.Condition()

    async def one_round() -> bool:
        nonlocal calls
        calls += 1
        async with called:
            called.notify_all()
        return results[calls - 1] if calls <= len(results) else True

    task = asyncio.create_task(run_rounds(wake, backoff, one_round), name="test-rounds")
    try:
        async with asyncio.timeout(WAIT_S), called:
            await called.wait_for(lambda: calls == 3)  # retried with no news
        assert backoff.attempt == 0  # reset by the clean round
        assert calls == 3 and not task.done()  # ... and now it waits for news
        wake.set()
        async with asyncio.timeout(WAIT_S), called:
            await called.wait_for(lambda: calls == 4)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
