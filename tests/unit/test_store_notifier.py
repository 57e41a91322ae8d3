"""The store's Notifier: a watch of some kinds sleeps through other kinds' changes, but not
forever (its cursor must keep up with the change log)."""

from __future__ import annotations

from edgeweave.cloud.store._watch import MAX_SKIPPED_CHANGES, Notifier

DEVICES = frozenset({"Device"})


async def test_a_watch_of_one_kind_is_woken_by_its_kind_and_by_unknown_changes() -> None:
    notifier = Notifier()
    devices, everything = notifier.subscribe(DEVICES), notifier.subscribe()
    notifier.notify(["App", "Node"], 2)
    assert everything.is_set() and not devices.is_set()
    everything.clear()
    notifier.notify(["App", "Device"], 2)
    assert devices.is_set() and everything.is_set()
    devices.clear()
    notifier.notify()  # a backend that cannot tell which kinds changed
    assert devices.is_set()
    notifier.unsubscribe(devices)
    devices.clear()
    notifier.notify(["Device"])
    assert not devices.is_set()


async def test_a_sleeping_watch_is_woken_after_enough_other_changes() -> None:
    notifier = Notifier()
    devices = notifier.subscribe(DEVICES)
    for _ in range(MAX_SKIPPED_CHANGES // 10 - 1):
        notifier.notify(["App"], 10)
    assert not devices.is_set()
    notifier.notify(["App"], 10)
    assert devices.is_set()  # its cursor moves past the Apps before compaction drops them
    devices.clear()
    notifier.notify(["App"], 10)
    assert not devices.is_set()  # counting starts over


async def test_closing_wakes_every_watch() -> None:
    notifier = Notifier()
    devices = notifier.subscribe(DEVICES)
    notifier.close()
    assert notifier.closed and devices.is_set()


async def test_a_watch_of_several_kinds_wakes_for_any_of_them() -> None:
    notifier = Notifier()
    mesh = notifier.subscribe(frozenset({"Service", "Endpoints", "App", "Node"}))
    notifier.notify(["Device"], 2)
    assert not mesh.is_set()
    notifier.notify(["Device", "Endpoints"], 2)
    assert mesh.is_set()
