"""The twin reporter's throttle: the first change goes at once, later ones wait for the end
of the device's report cycle, every value in between travels as a sample, and a newly
applied desired value waits briefly for the reading that follows it. A fake clock and an
in-memory append stand in for the loop's time and the outbox (no sockets, no files)."""

from __future__ import annotations

import asyncio
from typing import Any

from edgeweave.edge.devices.reporter import MAX_SAMPLES, OBSERVED_COALESCE_S, Reporter, payload_of
from edgeweave.errors import StoreUnavailable
from edgeweave.twin.messages import TwinValue
from edgeweave.twin.report import Sample
from edgeweave.twin.state import DeviceTwin, PropertyTwin
from edgeweave.twin.topics import device_ref

REF = device_ref("default", "thermo-1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def twin(temp: str = "21", target: str | None = "22") -> DeviceTwin:
    props = {
        "temp": PropertyTwin(type="float", actual=TwinValue(temp, 1)),
        "target": PropertyTwin(type="float", expected=TwinValue(target, 2) if target else None),
    }
    return DeviceTwin(REF, props, "online", 1_700_000_000_000)


def reporter(clock: Clock) -> tuple[Reporter, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def append(topic: str, payload: Any) -> int:
        assert topic == "device.twin"
        sent.append(payload)
        return len(sent)

    async def durable(seq: int) -> None:
        return None

    return Reporter(append, durable, clock=clock), sent


async def test_the_first_change_goes_at_once_and_later_ones_at_the_cycle_end() -> None:
    clock = Clock()
    rep, sent = reporter(clock)
    cycles = {"temp": 1000}
    rep.note(twin("21"), cycles_ms=cycles, samples=[Sample("temp", "21", 1)])
    await rep.send_due()
    assert len(sent) == 1 and sent[0]["samples"][0]["value"] == "21"
    clock.now += 0.2
    rep.note(twin("22"), cycles_ms=cycles, samples=[Sample("temp", "22", 2)])
    clock.now += 0.1
    rep.note(twin("23"), cycles_ms=cycles, samples=[Sample("temp", "23", 3)])
    await rep.send_due()
    assert len(sent) == 1  # within the cycle: held back
    clock.now = 101.0
    await rep.send_due()
    assert len(sent) == 2
    assert [s["value"] for s in sent[1]["samples"]] == ["22", "23"]  # none lost
    twins = {t["propertyName"]: t for t in sent[1]["twins"]}
    assert twins["temp"]["reported"]["value"] == "23"


async def test_state_changes_and_local_writes_are_urgent() -> None:
    clock = Clock()
    rep, sent = reporter(clock)
    rep.note(twin(), cycles_ms={}, samples=[Sample("temp", "21", 1)])
    await rep.send_due()
    rep.note(twin(), cycles_ms={}, urgent=True)
    await rep.send_due()
    assert len(sent) == 2


async def test_a_new_desired_value_waits_for_the_reading_that_follows() -> None:
    clock = Clock()
    rep, sent = reporter(clock)
    rep.note(twin(target="25"), cycles_ms={}, observed=True)
    await rep.send_due()
    assert sent == []  # waits up to OBSERVED_COALESCE_S
    rep.note(twin("24", target="25"), cycles_ms={}, samples=[Sample("temp", "24", 5)])
    await rep.send_due()
    assert len(sent) == 1  # both in one entry
    assert sent[0]["samples"][0]["value"] == "24"
    clock.now += OBSERVED_COALESCE_S
    rep.note(twin(target="26"), cycles_ms={}, observed=True)
    clock.now += OBSERVED_COALESCE_S
    await rep.send_due()
    assert len(sent) == 2  # no reading came: it goes anyway


async def test_samples_are_capped_per_entry_keeping_the_newest() -> None:
    clock = Clock()
    rep, sent = reporter(clock)
    rep.note(twin(), cycles_ms={}, samples=[Sample("temp", "0", 0)])
    await rep.send_due()
    many = [Sample("temp", str(i), i) for i in range(MAX_SAMPLES + 10)]
    rep.note(twin(), cycles_ms={"temp": 1000}, samples=many)
    clock.now += 1.0
    await rep.send_due()
    assert len(sent[1]["samples"]) == MAX_SAMPLES
    assert sent[1]["samples"][-1]["value"] == str(MAX_SAMPLES + 9)
    assert rep.statistics()["samples_dropped"] == 10


def test_hidden_properties_are_left_out_of_the_payload() -> None:
    payload = payload_of(twin(), frozenset({"temp"}), [Sample("temp", "1", 1)])
    assert [t["propertyName"] for t in payload["twins"]] == ["target"]
    assert payload["lastOnlineTime"]


async def test_the_loop_sends_when_due_and_stops_on_cancel() -> None:
    rep, sent = reporter(Clock())
    task = asyncio.create_task(rep.run())
    rep.note(twin(), cycles_ms={}, samples=[Sample("temp", "21", 1)])
    async with asyncio.timeout(5):
        while not sent:
            await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(sent) == 1


async def test_reports_waiting_for_their_cycle_go_into_the_outbox_when_the_agent_stops() -> None:
    clock = Clock()
    rep, sent = reporter(clock)
    task = asyncio.create_task(rep.run())
    cycles = {"temp": 60_000}
    rep.note(twin("21"), cycles_ms=cycles, samples=[Sample("temp", "21", 1)])
    async with asyncio.timeout(5):
        while not sent:
            await asyncio.sleep(0)
    rep.note(twin("22"), cycles_ms=cycles, samples=[Sample("temp", "22", 2)])  # a minute away
    await asyncio.sleep(0)
    assert len(sent) == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(sent) == 2 and sent[1]["samples"][0]["value"] == "22"  # kept, not lost
    assert rep.statistics()["pending"] == 0


async def test_a_report_due_now_is_in_the_outbox_when_note_returns() -> None:
    clock = Clock()
    flushed: list[int] = []
    sent: list[Any] = []

    def append(topic: str, payload: Any) -> int:
        sent.append(payload)
        return len(sent)

    async def durable(seq: int) -> None:
        flushed.append(seq)

    rep = Reporter(append, durable, clock=clock)
    rep.note(twin(), cycles_ms={}, samples=[Sample("temp", "21", 1)])
    assert len(sent) == 1 and flushed == []  # queued at once; the flush is the loop's job
    await rep.send_due()
    assert flushed == [1] and len(sent) == 1  # flushed, not sent twice


async def test_a_report_the_outbox_refuses_is_kept_and_sent_later() -> None:
    clock = Clock()
    sent: list[Any] = []
    closed = True

    def append(topic: str, payload: Any) -> int:
        if closed:
            raise StoreUnavailable("the outbox is closed")
        sent.append(payload)
        return len(sent)

    async def durable(seq: int) -> None:
        return None

    rep = Reporter(append, durable, clock=clock)
    rep.note(twin(), cycles_ms={}, samples=[Sample("temp", "21", 1)])  # does not raise
    assert rep.statistics()["pending"] == 1
    closed = False
    clock.now += 1.0
    await rep.send_due()
    assert len(sent) == 1 and sent[0]["samples"][0]["value"] == "21"
