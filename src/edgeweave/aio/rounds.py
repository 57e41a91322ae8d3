"""Rounds of work woken by news, retried with backoff: the loop of the edge pattern operators.

:func:`run_rounds` runs ``one_round`` (which answers whether everything in it succeeded), then
waits: for news (``wake`` set) after a clean round, or for the next backoff delay — cut short
by news — after a failed one. The backoff resets after a clean round.

Must not decide what a round does; that is the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from edgeweave.aio.backoff import Backoff


async def run_rounds(
    wake: asyncio.Event, backoff: Backoff, one_round: Callable[[], Awaitable[bool]]
) -> None:
    """Until cancelled."""
    while True:
        wake.clear()
        if await one_round():
            backoff.reset()
            await wake.wait()
            continue
        with contextlib.suppress(TimeoutError):  # a retry timer, or news sooner
            await asyncio.wait_for(wake.wait(), backoff.next_delay())
