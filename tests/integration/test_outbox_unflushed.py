"""The link's peeks of entries still on their way to disk (``unflushed=True``): only below a
durable reserved seq, in seq order across the last flush, the flush being written and the
buffer; never a seq reused after a crash; an entry the cloud committed before its flush is not
written. Real SQLite files; a crash is a child process leaving with ``os._exit``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from edgeweave.edge.outbox import RESERVE_BLOCK, Entry, Outbox, open_outbox

LONG_S = 3600.0  # nothing flushes unless a test asks


async def early(outbox: Outbox, after: int = 0, max_entries: int = 1_000_000) -> list[Entry]:
    return await outbox.peek(after, max_entries=max_entries, max_bytes=1 << 40, unflushed=True)


async def reserved(outbox: Outbox) -> None:
    """Make a reservation: an unflushed peek asks for it, the next flush writes it."""
    outbox.append_nowait("event", "first")
    assert await early(outbox) == []  # nothing is reserved yet: only flushed entries go
    await outbox.flush()


async def test_unflushed_entries_are_handed_out_once_reserved(outbox: Outbox) -> None:
    await reserved(outbox)
    first = outbox.statistics().durable_seq
    seq = outbox.append_nowait("event", {"n": 1})
    got = await early(outbox, first)
    assert [(e.seq, e.payload) for e in got] == [(seq, {"n": 1})]
    assert outbox.statistics().durable_seq < seq  # handed out before its flush
    assert await outbox.peek(first, max_entries=10, max_bytes=1 << 20) == []  # plain: flushed
    await outbox.flush()
    assert [e.seq for e in await outbox.peek(first, max_entries=10, max_bytes=1 << 20)] == [seq]


async def test_order_runs_across_the_tail_the_flush_in_flight_and_the_buffer(
    outbox: Outbox,
) -> None:
    await reserved(outbox)
    seqs = [outbox.append_nowait("event", i) for i in range(3)]
    await outbox.flush()  # these three are the tail now
    seqs += [outbox.append_nowait("log", i) for i in range(3)]
    seqs.append(outbox.append_nowait("app.status", {"v": 1}, key="a"))
    flushing = asyncio.create_task(outbox.flush())
    for _ in range(100):  # until the flusher has taken the buffer (it is writing it now)
        if not outbox.statistics().buffered:
            break
        await asyncio.sleep(0)
    assert outbox.statistics().buffered == 0
    assert outbox.statistics().durable_seq < seqs[-1]  # written, not yet on disk
    seqs += [outbox.append_nowait("metric", i) for i in range(3)]
    seqs.append(outbox.append_nowait("node.status", {"ready": True}, key="n"))
    seqs += [outbox.append_nowait("event", "last")]
    got = await early(outbox, seqs[0] - 1)
    assert [e.seq for e in got] == seqs
    assert [e.seq for e in await early(outbox, seqs[3], max_entries=2)] == seqs[4:6]
    assert [e.seq for e in await early(outbox, seqs[-3])] == seqs[-2:]
    await flushing
    await outbox.flush()
    plain = await outbox.peek(seqs[0] - 1, max_entries=100, max_bytes=1 << 20)
    assert [e.seq for e in plain] == seqs


async def test_a_status_replaced_before_its_flush_is_peeked_as_the_newer_one(
    outbox: Outbox,
) -> None:
    await reserved(outbox)
    old = outbox.append_nowait("app.status", {"phase": "Pending"}, key="default/a")
    assert [e.seq for e in await early(outbox, old - 1)] == [old]
    new = outbox.append_nowait("app.status", {"phase": "Running"}, key="default/a")
    got = await early(outbox, old)
    assert [(e.seq, e.payload) for e in got] == [(new, {"phase": "Running"})]


async def test_wait_peek_unflushed_wakes_on_an_append(outbox: Outbox) -> None:
    await reserved(outbox)
    after = outbox.statistics().durable_seq
    waiter = asyncio.create_task(
        outbox.wait_peek(after, max_entries=10, max_bytes=1 << 20, unflushed=True)
    )
    await asyncio.sleep(0)
    assert not waiter.done()
    seq = outbox.append_nowait("event", "wake")
    async with asyncio.timeout(5):
        got = await waiter
    assert [e.seq for e in got] == [seq]
    assert outbox.statistics().durable_seq < seq


async def test_an_entry_the_cloud_committed_before_its_flush_is_not_written(
    outbox: Outbox,
) -> None:
    await reserved(outbox)
    await outbox.ack(outbox.statistics().durable_seq)
    seqs = [outbox.append_nowait("event", i) for i in range(3)]
    assert [e.seq for e in await early(outbox, seqs[0] - 1)] == seqs
    await outbox.ack(seqs[1])  # the cloud committed the first two before they were flushed
    await outbox.flush()
    stats = outbox.statistics()
    assert (stats.entries, stats.oldest_seq, stats.newest_seq) == (1, seqs[2], seqs[2])
    assert [e.seq for e in await outbox.peek(0, max_entries=10, max_bytes=1 << 20)] == seqs[2:]


CRASH = """
import asyncio, json, os, sys
from pathlib import Path
from edgeweave.edge.outbox import open_outbox

async def main() -> None:
    box = await open_outbox(Path(sys.argv[1]), flush_interval_s=3600.0)
    box.append_nowait("event", "first")
    await box.peek(0, max_entries=10, max_bytes=1 << 20, unflushed=True)
    await box.flush()  # the reservation
    seq = box.append_nowait("event", "sent, never flushed")
    sent = await box.peek(seq - 1, max_entries=10, max_bytes=1 << 20, unflushed=True)
    print(json.dumps({"sent": [e.seq for e in sent]}), flush=True)
    os._exit(0)  # a crash: no flush, no close

asyncio.run(main())
"""


async def test_a_crash_after_an_unflushed_send_never_reuses_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CRASH, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sent = json.loads(child.stdout)["sent"]
    assert len(sent) == 1
    box = await open_outbox(path, flush_interval_s=LONG_S)
    try:
        assert [e.payload for e in await early(box)] == ["first"]  # the lost one is gone
        after = box.append_nowait("event", "after the crash")
        assert sent[0] < after <= sent[0] + RESERVE_BLOCK + 1  # past the reservation
    finally:
        await box.aclose()


async def test_reservations_stay_ahead_and_a_restart_continues_after_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    box = await open_outbox(path, flush_interval_s=LONG_S)
    await reserved(box)
    first = box.statistics().durable_seq
    seqs = [box.append_nowait("event", i) for i in range(5)]
    assert [e.seq for e in await early(box, first)] == seqs  # all within the reservation
    await box.aclose()
    box = await open_outbox(path, flush_interval_s=LONG_S)
    try:
        assert box.append_nowait("event", "next") > first + RESERVE_BLOCK
    finally:
        await box.aclose()


async def test_plain_peeks_keep_to_flushed_entries(outbox: Outbox) -> None:
    await reserved(outbox)
    after = outbox.statistics().durable_seq
    outbox.append_nowait("event", "buffered")
    waiter = asyncio.create_task(outbox.wait_peek(after, max_entries=10, max_bytes=1 << 20))
    await asyncio.sleep(0)
    assert not waiter.done()  # an append alone does not wake a plain peek
    await outbox.flush()
    async with asyncio.timeout(5):
        assert [e.payload for e in await waiter] == ["buffered"]
