"""The durable upstream outbox on real SQLite files: order, durability, coalescing, the policy
when full, restart continuity and seq uniqueness. Synchronisation is ``flush()`` /
``wait_durable()``, never sleeps; the long flush interval in most tests proves it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edgeweave.edge import outbox as outbox_module
from edgeweave.edge.outbox import Entry, Outbox, drop_class, open_outbox
from edgeweave.errors import (
    BadRequest,
    InvalidObject,
    PayloadTooLarge,
    StoreUnavailable,
    TooManyRequests,
)

LONG_S = 3600.0  # flushes happen only when a test asks for them (or flush_max is reached)


async def drain(outbox: Outbox, after: int = 0) -> list[Entry]:
    return await outbox.peek(after, max_entries=1_000_000, max_bytes=1 << 40)


async def test_appends_are_peeked_in_seq_order_and_acked(outbox: Outbox) -> None:
    seqs = [outbox.append_nowait("event", {"i": i}) for i in range(10)]
    assert seqs == list(range(1, 11))
    assert await drain(outbox) == []  # not flushed yet: nothing is handed out
    await outbox.flush()
    entries = await drain(outbox)
    assert [e.seq for e in entries] == seqs
    assert [e.payload for e in entries] == [{"i": i} for i in range(10)]
    assert json.loads(entries[0].to_json()) == {"seq": 1, "topic": "event", "payload": {"i": 0}}

    assert [e.seq for e in await outbox.peek(3, max_entries=2, max_bytes=1000)] == [4, 5]
    one = len(entries[0].payload_json)
    assert [e.seq for e in await outbox.peek(0, max_entries=100, max_bytes=2 * one)] == [1, 2]
    assert [e.seq for e in await outbox.peek(0, max_entries=100, max_bytes=1)] == [1]

    await outbox.ack(4)
    assert [e.seq for e in await drain(outbox)] == list(range(5, 11))
    await outbox.flush()  # the file catches up with the ack
    stats = outbox.statistics()
    assert (stats.entries, stats.oldest_seq, stats.newest_seq) == (6, 5, 10)
    assert stats.bytes == sum(len(e.payload_json) for e in entries[4:])
    await outbox.ack(10)
    assert await drain(outbox) == []
    await outbox.flush()
    assert outbox.statistics().entries == 0


async def test_an_ack_is_written_with_the_next_flush_in_one_transaction(
    tmp_path: Path,
) -> None:
    box = await open_outbox(tmp_path / "o.db", flush_interval_s=LONG_S)
    try:
        for i in range(10):
            box.append_nowait("event", {"i": i})
        await box.flush()
        flushes = box.statistics().flushes
        await box.ack(4)
        assert box.statistics().entries == 10  # not written on its own
        assert [e.seq for e in await drain(box)] == list(range(5, 11))  # but gone already
        box.append_nowait("event", {"i": 10})
        await box.flush()
        stats = box.statistics()
        assert (stats.entries, stats.oldest_seq, stats.flushes) == (7, 5, flushes + 1)
    finally:
        await box.aclose()


async def test_a_status_acked_and_then_replaced_in_one_flush_is_counted_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S)
    try:
        box.append_nowait("app.status", {"phase": "Pending"}, key="a")
        await box.flush()
        await box.ack(1)  # not written yet: the next flush deletes it ...
        box.append_nowait("app.status", {"phase": "Running"}, key="a")  # ... and replaces it
        box.append_nowait("event", {"n": 1})
        await box.flush()
        assert box.statistics().entries == 2
        assert [seq for seq, *_ in on_file(path, 0)] == [2, 3]
    finally:
        await box.aclose()


async def test_an_ack_alone_is_written_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "ACK_WRITE_DELAY_S", 0.001)
    box = await open_outbox(tmp_path / "o.db", flush_interval_s=LONG_S)
    try:
        box.append_nowait("event", {"i": 0})
        await box.flush()
        await box.ack(1)
        async with asyncio.timeout(5):
            while box.statistics().entries:
                await asyncio.sleep(0.001)  # polling the flusher's work, bounded above
    finally:
        await box.aclose()


async def test_an_ack_not_written_yet_is_written_at_close(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S)
    box.append_nowait("event", {"i": 0})
    await box.flush()
    await box.ack(1)
    await box.aclose()
    box = await open_outbox(path, flush_interval_s=LONG_S)
    try:
        assert await drain(box) == [] and box.statistics().entries == 0
    finally:
        await box.aclose()


async def test_wait_peek_returns_once_entries_are_flushed(outbox: Outbox) -> None:
    waiter = asyncio.create_task(outbox.wait_peek(0, max_entries=10, max_bytes=1000))
    assert not waiter.done()
    outbox.append_nowait("event", {"n": 1})
    await outbox.flush()
    assert [e.payload for e in await waiter] == [{"n": 1}]
    closing = asyncio.create_task(outbox.wait_peek(1, max_entries=10, max_bytes=1000))
    await outbox.aclose()
    with pytest.raises(StoreUnavailable):
        await closing


async def test_flush_max_triggers_a_flush_without_being_asked(tmp_path: Path) -> None:
    box = await open_outbox(tmp_path / "o.db", flush_interval_s=LONG_S, flush_max=100)
    for i in range(100):
        box.append_nowait("log", {"i": i})
    await box.wait_durable(100)
    assert box.statistics().flushes == 1
    assert len(await drain(box)) == 100
    await box.aclose()


async def test_the_flush_interval_flushes_on_its_own(tmp_path: Path) -> None:
    box = await open_outbox(tmp_path / "o.db", flush_interval_s=0.001)
    box.append_nowait("log", "x")
    await box._round.done.wait()  # the flush round that covers the entry, not a timer
    assert box.statistics().durable_seq == 1
    await box.aclose()


async def test_status_entries_coalesce_per_object_in_buffer_and_on_disk(outbox: Outbox) -> None:
    outbox.append_nowait("app.status", {"phase": "Pending"}, key="default/a")
    outbox.append_nowait("event", {"reason": "Started"})
    outbox.append_nowait("app.status", {"phase": "Installing"}, key="default/a")
    outbox.append_nowait("app.status", {"phase": "Pending"}, key="default/b")
    await outbox.flush()
    got = [(e.seq, e.topic, e.payload) for e in await drain(outbox)]
    assert got == [
        (2, "event", {"reason": "Started"}),
        (3, "app.status", {"phase": "Installing"}),
        (4, "app.status", {"phase": "Pending"}),
    ]
    seq = outbox.append_nowait("app.status", {"phase": "Running"}, key="default/a")
    outbox.append_nowait("node.status", {"ready": True}, key="default/a")  # other topic
    await outbox.flush()
    got = [(e.seq, e.topic, e.payload) for e in await drain(outbox)]
    assert got == [
        (2, "event", {"reason": "Started"}),
        (4, "app.status", {"phase": "Pending"}),
        (seq, "app.status", {"phase": "Running"}),
        (seq + 1, "node.status", {"ready": True}),
    ]
    stats = outbox.statistics()
    assert stats.entries == 4
    assert stats.bytes == sum(len(e.payload_json) for e in await drain(outbox))
    assert stats.coalesced == 1  # in the buffer; the on-disk replacement is not a drop
    assert stats.dropped_by_topic == {}


async def test_a_status_acked_then_reported_again_is_stored_again(outbox: Outbox) -> None:
    outbox.append_nowait("app.status", {"phase": "Running"}, key="a")
    await outbox.flush()
    await outbox.ack(1)
    outbox.append_nowait("app.status", {"phase": "Failed"}, key="a")
    await outbox.flush()
    assert [(e.seq, e.payload) for e in await drain(outbox)] == [(2, {"phase": "Failed"})]


async def test_bad_appends_are_refused_without_using_a_seq(outbox: Outbox) -> None:
    with pytest.raises(BadRequest):
        outbox.append_nowait("app.status", {})  # status needs a key
    with pytest.raises(BadRequest):
        outbox.append_nowait("event", {}, key="k")  # only status takes one
    with pytest.raises(InvalidObject):
        outbox.append_nowait("event", {"x": float("nan")})
    with pytest.raises(InvalidObject):
        outbox.append_nowait("event", {"x": object()})
    with pytest.raises(PayloadTooLarge):
        outbox.append_nowait("log", "x" * 300_000)
    assert outbox.append_nowait("event", {}) == 1


async def test_an_ack_leaves_the_flushes_fsyncing(outbox: Outbox) -> None:
    """Acks skip their own fsync (a lost ack only re-sends); flushes must keep theirs."""
    outbox.append_nowait("event", {"n": 1})
    await outbox.flush()
    await outbox.ack(1)
    level = await outbox._sql.run(
        lambda: outbox._sql.connection.execute("PRAGMA synchronous").fetchone()[0]
    )
    assert level == 2  # FULL
    assert await drain(outbox) == []


def on_file(path: Path, after: int) -> list[tuple[int, str, str]]:
    """What the file holds after ``after``, read past the outbox."""
    with sqlite3.connect(path) as db:
        query = "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq"
        return [
            (int(seq), str(topic), str(text)) for seq, topic, text in db.execute(query, (after,))
        ]


async def test_peeks_of_the_last_flush_match_the_file(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S, max_entries=7)
    try:
        box.append_nowait("app.status", {"phase": "Pending"}, key="a")
        box.append_nowait("event", {"n": 0})
        await box.flush()
        first = box.statistics().durable_seq
        box.append_nowait("app.status", {"phase": "Running"}, key="a")  # replaces seq 1
        box.append_nowait("event", {"n": 1})
        box.append_nowait("app.status", {"phase": "Pending"}, key="b")
        box.append_nowait("event", {"n": 2})
        await box.flush()
        for after in range(first + 4):  # behind the last flush (read from the file) and in it
            got = [(e.seq, e.topic, e.payload_json) for e in await drain(box, after)]
            assert got == on_file(path, after), after
        one = len('{"n":1}')
        assert [e.seq for e in await box.peek(first, max_entries=2, max_bytes=1000)] == [3, 4]
        assert [e.seq for e in await box.peek(first + 1, max_entries=9, max_bytes=one)] == [4]
        assert [e.seq for e in await box.peek(first, max_entries=9, max_bytes=1)] == [3]
        await box.ack(first + 2)  # into the last flush: peeks from before it skip what went
        await box.flush()  # the file catches up with the ack
        for after in range(first + 4):
            got = [(e.seq, e.topic, e.payload_json) for e in await drain(box, after)]
            assert got == on_file(path, after), after

        for i in range(3, 12):  # over max_entries: the policy drops, and peeks read the file
            box.append_nowait("log", {"n": i})
        await box.flush()
        assert box.statistics().dropped_by_topic
        for after in range(box.statistics().durable_seq + 1):
            got = [(e.seq, e.topic, e.payload_json) for e in await drain(box, after)]
            assert got == on_file(path, after), after
    finally:
        await box.aclose()


async def test_when_full_logs_and_metrics_go_first_then_events(tmp_path: Path) -> None:
    box = await open_outbox(tmp_path / "o.db", flush_interval_s=LONG_S, max_entries=6)
    for topic in ["event", "log", "app.status", "metric.cpu", "event", "log.app", "twin.report"]:
        key = "a" if topic.endswith(".status") else None
        box.append_nowait(topic, {"t": topic}, key=key)
    await box.flush()
    # 7 entries, room for 6: the oldest log goes
    assert [e.topic for e in await drain(box)] == [
        "event",
        "app.status",
        "metric.cpu",
        "event",
        "log.app",
        "twin.report",
    ]
    for i in range(3):
        box.append_nowait("event", {"i": i})
    await box.flush()
    # 3 more: the remaining metric and log go, then the oldest event
    assert [e.topic for e in await drain(box)] == [
        "app.status",
        "event",
        "twin.report",
        "event",
        "event",
        "event",
    ]
    for i in range(5):
        box.append_nowait("app.status", {"i": i}, key=f"obj-{i}")
    await box.flush()
    # events go, then other topics; status entries are never dropped
    assert [e.topic for e in await drain(box)] == ["app.status"] * 6
    stats = box.statistics()
    assert stats.entries == 6
    assert stats.dropped_by_topic == {
        "log": 1,
        "metric.cpu": 1,
        "log.app": 1,
        "event": 5,
        "twin.report": 1,
    }
    report = box.take_drop_report()
    assert report is not None and report.total == 9
    assert box.take_drop_report() is None
    box.append_nowait("log", "x")
    await box.flush()  # over the limit again only with status entries: the log goes
    report = box.take_drop_report()
    assert report is not None and report.entries_by_topic == {"log": 1}
    await box.aclose()


async def test_when_full_by_bytes_the_oldest_droppable_entries_go(tmp_path: Path) -> None:
    box = await open_outbox(
        tmp_path / "o.db", flush_interval_s=LONG_S, max_bytes=1000, max_payload_bytes=500
    )
    for i in range(10):
        box.append_nowait("log", "x" * 98 + f"{i}")  # 101 bytes of JSON each
    box.append_nowait("event", "e" * 200)
    await box.flush()
    entries = await drain(box)
    assert box.statistics().bytes == sum(len(e.payload_json) for e in entries) <= 1000
    assert [e.seq for e in entries] == [4, 5, 6, 7, 8, 9, 10, 11]  # 3 logs made room
    await box.aclose()


async def test_drop_counts_survive_a_restart_until_reported(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S, max_entries=2)
    for i in range(5):
        box.append_nowait("metric", i)
    await box.aclose()
    box = await open_outbox(path, flush_interval_s=LONG_S, max_entries=2)
    assert box.statistics().dropped_by_topic == {"metric": 3}
    report = box.take_drop_report()
    assert report is not None and report.entries_by_topic == {"metric": 3}
    box.append_nowait("event", "e")  # drops one more metric; persists what was reported
    await box.aclose()
    box = await open_outbox(path, flush_interval_s=LONG_S, max_entries=2)
    report = box.take_drop_report()
    assert report is not None and report.entries_by_topic == {"metric": 1}
    assert box.statistics().dropped_by_topic == {"metric": 4}
    await box.aclose()


async def test_restart_loses_nothing_and_continues_the_seq(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S)
    for i in range(1000):
        box.append_nowait("log", {"i": i})
    box.append_nowait("app.status", {"v": 1}, key="a")
    await box.flush()
    await box.ack(10)
    for i in range(5):
        box.append_nowait("event", {"late": i})  # buffered only: aclose flushes them
    await box.aclose()

    box = await open_outbox(path, flush_interval_s=LONG_S)
    entries = await drain(box)
    assert [e.seq for e in entries] == list(range(11, 1007))
    stats = box.statistics()
    assert (stats.entries, stats.oldest_seq, stats.newest_seq) == (996, 11, 1006)
    assert stats.bytes == sum(len(e.payload_json) for e in entries)
    assert box.append_nowait("event", {}) == 1007
    box.append_nowait("app.status", {"v": 2}, key="a")  # still coalesces with the stored one
    await box.flush()
    statuses = [e for e in await drain(box) if e.topic == "app.status"]
    assert [(e.seq, e.payload) for e in statuses] == [(1008, {"v": 2})]
    await box.aclose()


async def test_acking_everything_then_restarting_never_reuses_a_seq(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S)
    for i in range(50):
        box.append_nowait("event", i)
    await box.flush()
    await box.ack(50)
    await box.flush()  # the file catches up with the ack
    assert box.statistics().entries == 0
    await box.aclose()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    raw.close()

    box = await open_outbox(path, flush_interval_s=LONG_S)
    assert box.append_nowait("event", "after restart") == 51
    await box.aclose()


async def test_a_cloud_ack_beyond_our_seq_moves_the_seq_past_it(outbox: Outbox) -> None:
    outbox.append_nowait("event", 1)
    await outbox.flush()
    await outbox.ack(500)  # e.g. the outbox file was lost but the cloud remembers
    await outbox.flush()
    assert outbox.statistics().durable_seq == 500
    assert outbox.append_nowait("event", 2) == 501


async def test_concurrent_appends_from_many_tasks_keep_strict_seq_order(tmp_path: Path) -> None:
    box = await open_outbox(tmp_path / "o.db", flush_interval_s=0.001, flush_max=64)
    returned: dict[int, list[int]] = {}

    async def producer(task: int) -> None:
        mine = returned.setdefault(task, [])
        for i in range(300):
            mine.append(await box.append("event", {"task": task, "i": i}))
            if i % 50 == 0:
                await asyncio.sleep(0)  # interleave with the other producers

    async with asyncio.TaskGroup() as tg:
        for t in range(20):
            tg.create_task(producer(t))
    await box.flush()
    entries = await drain(box)
    assert [e.seq for e in entries] == list(range(1, 6001))
    by_seq = {e.seq: e.payload for e in entries}
    for task, seqs in returned.items():
        assert seqs == sorted(seqs)
        assert [by_seq[s] for s in seqs] == [{"task": task, "i": i} for i in range(300)]
    assert box.statistics().flushes > 1
    await box.aclose()


async def test_a_full_buffer_pushes_back(tmp_path: Path) -> None:
    box = await open_outbox(
        tmp_path / "o.db", flush_interval_s=LONG_S, flush_max=10_000, max_buffered=10_000
    )
    for i in range(10_000):
        box.append_nowait("log", i)
    with pytest.raises(TooManyRequests):
        box.append_nowait("log", "one too many")
    assert await box.append("log", "waits for room") == 10_001
    await box.flush()
    assert box.statistics().entries == 10_001
    await box.aclose()


async def test_a_failed_flush_keeps_the_entries_and_reports_the_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = await open_outbox(path, flush_interval_s=LONG_S)
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON outbox WHEN NEW.topic = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    raw.close()
    box.append_nowait("event", "a")
    box.append_nowait("poison", "b")
    with pytest.raises(StoreUnavailable, match="flush failed"):
        await box.flush()
    assert box.statistics().buffered == 2
    assert box.statistics().flush_failures >= 1
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TRIGGER fail")
    raw.close()
    await box.flush()
    assert [e.payload for e in await drain(box)] == ["a", "b"]
    await box.aclose()


async def test_a_closed_outbox_refuses_appends(tmp_path: Path) -> None:
    box = await open_outbox(tmp_path / "o.db")
    await box.aclose()
    with pytest.raises(StoreUnavailable):
        box.append_nowait("event", {})
    with pytest.raises(StoreUnavailable):
        await box.peek(0, max_entries=1, max_bytes=1)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("log", 0),
        ("metric.cpu", 0),
        ("logs", 2),
        ("event", 1),
        ("event.warn", 1),
        ("app.status", 3),
        ("log.status", 3),
        ("twin.report", 2),
    ],
)
def test_drop_classes_follow_the_policy(topic: str, expected: int) -> None:
    assert drop_class(topic) == expected


def test_payload_helpers_splice_json_text() -> None:
    entry = Entry(7, "event", '{"a":[1,2]}')
    decoded: Any = json.loads(entry.to_json())
    assert decoded == {"seq": 7, "topic": "event", "payload": {"a": [1, 2]}}
