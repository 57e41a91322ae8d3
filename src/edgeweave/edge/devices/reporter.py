"""Reported twin values to the cloud: ``device.twin`` outbox entries, throttled per device.

The cloud keeps ``Device.status.twins`` and a history of reported values (COMPAT.md §1,
DESIGN.md §5). A device's changes are sent at most once per its report cycle — the smallest
``reportCycle`` (ms) of its reported properties — with the first change after a quiet cycle
sent at once (leading edge) and later ones coalesced to the end of the cycle (trailing edge).
Every reported value in between travels as a *sample* for the history, so throttling loses
no reading. State changes and local desired writes are sent at once; a newly applied desired
value waits :data:`OBSERVED_COALESCE_S`, because the device's reported value usually follows
within milliseconds and both then travel in one entry (one outbox flush, one cloud commit).

The payload (the contract with the cloud's upstream committer)::

    {"device": {"namespace", "name"}, "state", "lastOnlineTime",
     "twins": [{"propertyName", "reported": {"value", "metadata": {"timestamp", "type"}},
                "observedDesired": {...}}],
     "samples": [{"property", "value", "timestamp"}],
     "localDesired": [{"property", "value", "base", "timestamp"}]}

Entries go into the durable outbox, which the link replays in order after a reconnect: none
is lost while the cloud is away. A report due at once goes in inside :meth:`Reporter.note`
(which says so), and the run loop asks for the flush. Must not read MQTT or apply twin rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from edgeweave.errors import EdgeweaveError, PayloadTooLarge, TooManyRequests
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.messages import TwinValue
from edgeweave.twin.report import TOPIC, LocalDesired, Sample
from edgeweave.twin.state import DeviceTwin, last_online_time

log = logging.getLogger(__name__)

DEFAULT_REPORT_CYCLE_MS: Final = 1000
MAX_SAMPLES: Final = 1000  # per entry; more in one cycle keeps the newest (counted in stats)
RETRY_S: Final = 1.0  # the outbox was full
OBSERVED_COALESCE_S: Final = 0.02


@dataclass
class _Pending:
    twin: DeviceTwin
    hidden: frozenset[str]  # reportToCloud: false
    samples: list[Sample] = field(default_factory=list)
    local: list[LocalDesired] = field(default_factory=list)
    due: float = 0.0


def _value(v: TwinValue | None, value_type: str) -> dict[str, Any] | None:
    if v is None:
        return None
    meta = {"type": value_type}
    if v.timestamp_ms is not None:
        meta["timestamp"] = str(v.timestamp_ms)
    return {"value": v.value, "metadata": meta}


def payload_of(
    twin: DeviceTwin,
    hidden: frozenset[str] = frozenset(),
    samples: list[Sample] | None = None,
    local: list[LocalDesired] | None = None,
) -> dict[str, Any]:
    twins = []
    for key, prop in sorted(twin.visible().items()):
        if key in hidden:
            continue
        entry: dict[str, Any] = {"propertyName": key}
        reported = _value(prop.actual, prop.type)
        if reported is not None:
            entry["reported"] = reported
        observed = _value(prop.expected, prop.type)
        if observed is not None:
            entry["observedDesired"] = observed
        twins.append(entry)
    out: dict[str, Any] = {
        "device": {"namespace": twin.device.namespace, "name": twin.device.name},
        "state": twin.state,
        "twins": twins,
    }
    if twin.last_online_ms is not None:
        out["lastOnlineTime"] = last_online_time(twin.last_online_ms)
    if samples:
        out["samples"] = [
            {"property": s.property, "value": s.value, "timestamp": s.timestamp_ms} for s in samples
        ]
    if local:
        out["localDesired"] = [
            {"property": d.property, "value": d.value, "base": d.base, "timestamp": d.timestamp_ms}
            for d in local
        ]
    return out


class Reporter:
    """Call :meth:`note` on every twin change; :meth:`run` is the sending task."""

    def __init__(
        self,
        append: Callable[[str, Any], int],
        wait_durable: Callable[[int], Any],
        *,
        clock: Callable[[], float],
    ) -> None:
        self._append = append
        self._wait_durable = wait_durable
        self._clock = clock
        self._pending: dict[ResourceRef, _Pending] = {}
        self._last_sent: dict[ResourceRef, float] = {}
        self._wake = asyncio.Event()
        self._unflushed = 0  # the last seq appended by note(), not yet asked to be flushed
        self.sent = 0
        self.samples_dropped = 0

    def note(
        self,
        twin: DeviceTwin,
        *,
        cycles_ms: Mapping[str, int],
        hidden: frozenset[str] = frozenset(),
        samples: Sequence[Sample] = (),
        local: Sequence[LocalDesired] = (),
        urgent: bool = False,
        observed: bool = False,
    ) -> bool:
        """Queue ``twin`` (the device's newest) with the ``samples`` that changed it;
        ``observed``: a new desired value was applied (sent soon, not at once). True when the
        report went into the outbox now."""
        ref = twin.device
        now = self._clock()
        due = self._due(ref, now, samples, cycles_ms, urgent, observed)
        pending = self._pending.get(ref)
        if pending is None:
            pending = self._pending[ref] = _Pending(twin, hidden, due=due)
        else:
            pending.twin, pending.hidden = twin, hidden
            pending.due = min(pending.due, due)
        shown = [s for s in samples if s.property not in hidden]
        pending.samples.extend(shown)
        if len(pending.samples) > MAX_SAMPLES:
            extra = len(pending.samples) - MAX_SAMPLES
            self.samples_dropped += extra
            del pending.samples[:extra]
        pending.local.extend(local)
        self._wake.set()  # the run loop asks for the flush, or waits for the new due time
        if pending.due > now:
            return False
        # into the outbox now, not a loop turn later: the link is woken at once
        seq = self._append_now([ref], now)
        self._unflushed = max(self._unflushed, seq)
        return seq > 0

    def forget(self, ref: ResourceRef) -> None:
        self._pending.pop(ref, None)
        self._last_sent.pop(ref, None)

    def _due(
        self,
        ref: ResourceRef,
        now: float,
        samples: Sequence[Sample],
        cycles_ms: Mapping[str, int],
        urgent: bool,
        observed: bool,
    ) -> float:
        if urgent:
            return now
        if observed and not samples:
            return now + OBSERVED_COALESCE_S
        cycle_ms = min(
            (cycles_ms.get(s.property, DEFAULT_REPORT_CYCLE_MS) for s in samples),
            default=DEFAULT_REPORT_CYCLE_MS,
        )
        return max(now, self._last_sent.get(ref, float("-inf")) + cycle_ms / 1000)

    def statistics(self) -> dict[str, int]:
        return {
            "pending": len(self._pending),
            "sent": self.sent,
            "samples_dropped": self.samples_dropped,
        }

    async def send_due(self) -> float | None:
        """Send every report that is due now; the clock time of the next one (None: none
        pending)."""
        now = self._clock()
        due = [ref for ref, p in self._pending.items() if p.due <= now]
        last_seq = max(self._append_now(due, now), self._unflushed)
        self._unflushed = 0
        if last_seq:
            try:  # flush now rather than on the outbox's timer: reports are latency-bound
                await self._wait_durable(last_seq)
            except EdgeweaveError as e:
                log.warning("twin reports not flushed yet: %s", e)
        return min((p.due for p in self._pending.values()), default=None)

    async def run(self) -> None:
        """Until cancelled: send what is due, then wait for the next due time or a note.
        Cancelled (the agent stops), it puts what still waits for its report cycle into the
        outbox at once: on disk, it is sent after the restart instead of being lost."""
        try:
            while True:
                self._wake.clear()
                next_due = await self.send_due()
                if next_due is None:
                    await self._wake.wait()
                    continue
                wait_s = next_due - self._clock()
                if wait_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait_s)
        finally:
            self._append_now(list(self._pending), self._clock())
            if self._pending:  # the outbox refused them (it closed first): nothing more to do
                log.error("%d twin reports not kept at stop", len(self._pending))

    def _append_now(self, due: list[ResourceRef], now: float) -> int:
        """Put the reports of ``due`` into the outbox; the last seq (0: none went in)."""
        last_seq = 0
        for ref in due:
            pending = self._pending.pop(ref)
            payload = payload_of(pending.twin, pending.hidden, pending.samples, pending.local)
            try:
                last_seq = self._append(TOPIC, payload)
            except PayloadTooLarge as e:
                log.error("twin report of %s dropped: %s", ref, e)
                continue
            except EdgeweaveError as e:  # full (it drains) or closed: keep it, try again later
                if not isinstance(e, TooManyRequests):
                    log.warning("twin report of %s not queued yet: %s", ref, e)
                pending.due = now + RETRY_S
                self._pending[ref] = pending
                continue
            self._last_sent[ref] = now
            self.sent += 1
        return last_seq
