"""BoundedQueue: refuses when full, evicts on request, counts everything."""

from __future__ import annotations

import asyncio

import pytest

from edgeweave.aio.tasks import BoundedQueue, QueueStatistics
from edgeweave.errors import TooManyRequests


async def test_full_queue_refuses_with_too_many_requests_and_counts_it() -> None:
    queue: BoundedQueue[int] = BoundedQueue(2, name="send")
    queue.put_nowait(1)
    queue.put_nowait(2)
    with pytest.raises(TooManyRequests, match="send is full"):
        queue.put_nowait(3)
    assert await queue.get() == 1
    assert queue.get_nowait() == 2
    assert queue.statistics() == QueueStatistics(
        size=0, max_size=2, put=2, got=2, refused=1, dropped=0
    )


async def test_dropping_oldest_evicts_and_counts() -> None:
    queue: BoundedQueue[str] = BoundedQueue(2)
    assert queue.put_nowait_dropping_oldest("a") is None
    queue.put_nowait_dropping_oldest("b")
    assert queue.put_nowait_dropping_oldest("c") == "a"
    assert [queue.get_nowait(), queue.get_nowait()] == ["b", "c"]
    assert queue.statistics().dropped == 1


async def test_put_waits_for_room() -> None:
    queue: BoundedQueue[int] = BoundedQueue(1)
    queue.put_nowait(1)
    putter = asyncio.create_task(queue.put(2), name="putter")
    await asyncio.sleep(0)
    assert not putter.done() and queue.full()
    assert await queue.get() == 1
    await putter
    assert queue.qsize() == 1 and queue.statistics().put == 2


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BoundedQueue[int](0)
