"""Short garbage-collection pauses for a process that holds many long-lived objects.

A cloud process with thousands of connected nodes holds millions of long-lived objects; a
full (generation 2) collection walks all of them and stalls the event loop for hundreds of
milliseconds, which shows up as heartbeat latency. :func:`keep_heap_frozen` periodically moves
everything alive into the permanent generation (``gc.freeze()``), so a full collection only
walks what was allocated since. Objects freed by reference counting are unaffected; only
reference cycles that were alive at a freeze and died afterwards wait for the next thaw
(``gc.unfreeze()`` + ``gc.collect()`` every ``thaw_every_s``), which bounds that memory.

Must not: run in short-lived tools (it is for the long-running server), or touch anything but
the collector.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)


async def keep_heap_frozen(freeze_every_s: float = 10.0, thaw_every_s: float = 3600.0) -> None:
    last_thaw = time.monotonic()
    while True:
        await asyncio.sleep(freeze_every_s)  # a period, not synchronisation
        if time.monotonic() - last_thaw >= thaw_every_s:
            gc.unfreeze()
            started = time.monotonic()
            found = gc.collect()
            log.info(
                "full collection: %d unreachable in %.0f ms",
                found,
                (time.monotonic() - started) * 1e3,
            )
            last_thaw = time.monotonic()
        gc.freeze()
