"""The in-memory tail of the change log: served only when it holds every row asked for."""

from __future__ import annotations

from edgeweave.cloud.store._recent import RecentChanges


def row(rv: int) -> tuple[int, str, str, str, str, str]:
    return (rv, "MODIFIED", "Device", "default", f"d{rv}", "{}")


def test_rows_after_the_floor_are_served_like_the_table() -> None:
    recent = RecentChanges(floor=10, compacted=3)
    recent.add([row(11), row(12)])
    recent.add([row(13)])
    assert recent.fetch(10, 100) == (3, [row(11), row(12), row(13)])
    assert recent.fetch(12, 100) == (3, [row(13)])
    assert recent.fetch(11, 1) == (3, [row(12)])
    assert recent.fetch(13, 100) == (3, [])  # caught up: nothing new, no query either


def test_a_watch_from_before_the_floor_reads_the_table() -> None:
    recent = RecentChanges(floor=10, compacted=0)
    recent.add([row(11)])
    assert recent.fetch(9, 100) is None
    assert recent.served == 0


def test_trimming_raises_the_floor_past_what_was_dropped() -> None:
    recent = RecentChanges(floor=0, compacted=0, capacity=8)
    recent.add([row(rv) for rv in range(1, 11)])  # 2 over: within the slack, kept
    assert recent.fetch(0, 100) == (0, [row(rv) for rv in range(1, 11)])
    recent.add([row(11)])  # 3 over > 8 // 4: trimmed to the newest 8
    assert recent.floor == 3
    assert recent.fetch(2, 100) is None
    assert recent.fetch(3, 100) == (0, [row(rv) for rv in range(4, 12)])
