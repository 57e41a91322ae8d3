"""One device served end to end: connect, collect, report, write desired values, reconnect.

A :class:`DeviceWorker` runs until cancelled:

1. builds a driver and opens it; on failure reports ``offline`` and retries after a capped,
   jittered backoff (:class:`~edgeweave.aio.backoff.Backoff`);
2. once open, reports ``online`` and runs, under one supervisor, a collect loop per property
   (read at ``collectCycle``; publish the latest reading at ``reportCycle`` when there is a
   reading newer than the last report, and only if ``reportToCloud``) and one writer;
3. the writer takes desired values handed over by :meth:`DeviceWorker.desire` (deltas and
   ``twin/get`` results from the bus), writes each ``ReadWrite`` property, reads it back and
   publishes the new actual value **at once**, without waiting for a cycle;
4. a :class:`~edgeweave.mappers.errors.DeviceUnavailable` anywhere closes the driver, reports
   ``offline`` and goes back to 1. A refused read marks the device ``unhealthy`` until every
   property reads again; a refused write is logged and not retried until the desired value
   changes.

Desired values are coalesced per property (the latest wins), so what waits for an offline
device is bounded by its number of properties. A desired value that was written and still
reads back the same is not written again: the agent repeats a delta whenever the reported
string differs from the desired one (``"21.50"`` vs ``"21.5"``), and that must not turn into a
write per report. Must not talk MQTT directly (it publishes through
:class:`~edgeweave.mappers.bus.BusPublisher`) or read the config file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.clock import Clock
from edgeweave.aio.tasks import open_supervisor
from edgeweave.mappers.bus import BusPublisher
from edgeweave.mappers.config import DeviceConfig, MapperSettings, PropertyConfig
from edgeweave.mappers.driver import Driver, DriverFactory
from edgeweave.mappers.errors import DeviceError, DeviceUnavailable
from edgeweave.twin.errors import TwinError
from edgeweave.twin.values import check_value

log = logging.getLogger(__name__)
T = TypeVar("T")

ONLINE = "online"
OFFLINE = "offline"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"


class DeviceWorker:
    def __init__(
        self,
        config: DeviceConfig,
        factory: DriverFactory,
        bus: BusPublisher,
        clock: Clock,
        settings: MapperSettings,
    ) -> None:
        self.config = config
        self._factory = factory
        self._bus = bus
        self._clock = clock
        self._settings = settings
        self.state = UNKNOWN
        self._lock = asyncio.Lock()  # one driver call at a time
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._wake = asyncio.Event()
        self._pending: dict[str, str] = {}  # property -> desired value still to write
        self._written: dict[str, tuple[str, str]] = {}  # property -> (desired, read back)
        self._refused: dict[str, str] = {}  # property -> desired value the device refused
        self._last: dict[str, str] = {}  # property -> last value read
        self._fresh: set[str] = set()  # read since the last report
        self._failing: dict[str, str] = {}  # property -> why its last read failed
        self.reads = self.writes = self.reports = self.failures = 0

    @property
    def id(self) -> str:
        return self.config.id

    # ------------------------------------------------------------ called by the runner

    def desire(self, desired: Mapping[str, str]) -> None:
        """Hand over desired values (property -> value); never blocks."""
        for name, value in desired.items():
            prop = self.config.property(name)
            if prop is None or not prop.read_write:
                log.debug("device %s: not writing %r (no such ReadWrite property)", self.id, name)
                continue
            if self._refused.get(name) == value:
                continue  # already refused and logged; wait for another value
            if self._written.get(name) == (value, self._last.get(name)):
                continue  # written, and the device still holds what it read back then
            self._pending[name] = value
        if self._pending:
            self._wake.set()

    async def announce(self) -> None:
        """The bus (re)connected: say the state and the latest readings again (the agent
        may have restarted) and ask for the expected values."""
        if self.state != UNKNOWN:
            await self._bus.state_update(self.config.ref, self.state)
        for prop in self.config.properties:
            value = self._last.get(prop.name)
            if value is not None:
                await self._report(prop, value)
        await self._bus.twin_get(self.config.ref)

    def statistics(self) -> dict[str, int | str]:
        return {
            "state": self.state,
            "reads": self.reads,
            "writes": self.writes,
            "reports": self.reports,
            "failures": self.failures,
            "pending": len(self._pending),
        }

    async def run(self) -> None:
        backoff = Backoff(self._settings.reconnect_base_s, self._settings.reconnect_cap_s)
        while True:
            driver = self._factory(self.config)
            try:
                await self._call(driver.open)
            except Exception as e:  # any failure to open: offline, retry later
                await self._close(driver)
                await self._set_state(OFFLINE, f"cannot open: {_why(e)}")
                await self._clock.sleep(backoff.next_delay())
                continue
            opened_at = self._clock.monotonic()
            await self._serve(driver)
            await self._set_state(OFFLINE, self._lost_reason)
            if self._clock.monotonic() - opened_at >= backoff.cap_s:
                backoff.reset()  # it was up for a while: start over from a short delay
            await self._clock.sleep(backoff.next_delay())

    # ------------------------------------------------------------ connection

    async def _serve(self, driver: Driver) -> None:
        self._lost.clear()
        self._failing.clear()
        await self._set_state(ONLINE, "connected")
        try:
            async with open_supervisor(f"device {self.id}", clock=self._clock) as tasks:
                for prop in self.config.properties:
                    tasks.start(self._collect_loop(driver, prop), name=f"collect {prop.name}")
                tasks.start(self._write_loop(driver), name="write")
                await self._lost.wait()
        finally:
            await self._close(driver)

    def _lose(self, error: Exception) -> None:
        if not self._lost.is_set():
            self._lost_reason = _why(error)
            self._lost.set()

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            try:
                async with asyncio.timeout(self._settings.call_timeout_s):
                    return await call()
            except TimeoutError as e:
                raise DeviceUnavailable(
                    f"no answer within {self._settings.call_timeout_s:g} s"
                ) from e

    async def _close(self, driver: Driver) -> None:
        try:
            await driver.aclose()
        except Exception:  # a driver's aclose must not raise; if it does, log it and go on
            log.exception("device %s: closing the driver failed", self.id)

    async def _set_state(self, state: str, why: str) -> None:
        if state == self.state:
            return
        level = logging.INFO if state == ONLINE else logging.WARNING
        log.log(level, "device %s is %s (%s)", self.id, state, why)
        self.state = state
        await self._bus.state_update(self.config.ref, state)

    # ------------------------------------------------------------ collect and report

    async def _collect_loop(self, driver: Driver, prop: PropertyConfig) -> None:
        collect_s = prop.collect_cycle_ms / 1000
        report_s = prop.report_cycle_ms / 1000
        next_collect = next_report = self._clock.monotonic()
        while True:
            now = self._clock.monotonic()
            if now >= next_collect:
                if not await self._collect(driver, prop):
                    return  # the device is gone; _serve closes it
                next_collect = _next_deadline(next_collect, collect_s, self._clock.monotonic())
            now = self._clock.monotonic()
            if now >= next_report:
                if prop.name in self._fresh:
                    await self._report(prop, self._last[prop.name])
                next_report = _next_deadline(next_report, report_s, now)
            # a report is due only with a fresh reading: until then only the collect wakes us
            # (a 1 ms reportCycle would otherwise wake the mapper a thousand times a second)
            wake = min(next_collect, next_report) if prop.name in self._fresh else next_collect
            await self._clock.sleep(wake - self._clock.monotonic())

    async def _collect(self, driver: Driver, prop: PropertyConfig) -> bool:
        """Read ``prop``; False when the device is unavailable."""
        value = await self._read(driver, prop)
        if value is None:
            return not self._lost.is_set()
        self._last[prop.name] = value
        self._fresh.add(prop.name)
        if self._failing.pop(prop.name, None) is not None:
            log.info("device %s: %s reads again", self.id, prop.name)
            if not self._failing and self.state == UNHEALTHY:
                await self._set_state(ONLINE, "every property reads")
        return True

    async def _read(self, driver: Driver, prop: PropertyConfig) -> str | None:
        """The property's value, checked; None after logging why there is none."""
        try:
            value = await self._call(lambda: driver.read(prop))
            self.reads += 1
            return check_value(value, prop.twin_type, prop.name)
        except DeviceUnavailable as e:
            self._lose(e)
            return None
        except (DeviceError, TwinError) as e:
            why = e.message
        except Exception as e:  # a driver bug must not stop the device
            log.exception("device %s: the driver failed reading %s", self.id, prop.name)
            why = _why(e)
        self.failures += 1
        if self._failing.get(prop.name) != why:
            log.warning("device %s: cannot read %s: %s", self.id, prop.name, why)
        self._failing[prop.name] = why
        await self._set_state(UNHEALTHY, f"{prop.name}: {why}")
        return None

    async def _report(self, prop: PropertyConfig, value: str) -> None:
        self._fresh.discard(prop.name)
        if not prop.report_to_cloud:
            return
        if await self._bus.twin_update(self.config.ref, prop.name, prop.twin_type, value):
            self.reports += 1

    # ------------------------------------------------------------ desired values

    async def _write_loop(self, driver: Driver) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            while self._pending:
                name = next(iter(self._pending))
                value = self._pending.pop(name)
                prop = self.config.property(name)
                if prop is not None and not await self._write(driver, prop, value):
                    self._pending.setdefault(name, value)  # write it after reconnecting
                    return

    async def _write(self, driver: Driver, prop: PropertyConfig, value: str) -> bool:
        """Write, read back, report; False when the device is unavailable."""
        try:
            await self._call(lambda: driver.write(prop, value))
        except DeviceUnavailable as e:
            self._lose(e)
            return False
        except Exception as e:  # refused, or a driver bug: same outcome
            if not isinstance(e, DeviceError):
                log.exception("device %s: the driver failed writing %s", self.id, prop.name)
            log.warning("device %s: %s=%r not written: %s", self.id, prop.name, value, _why(e))
            self._refused[prop.name] = value
            return True
        self.writes += 1
        self._refused.pop(prop.name, None)
        actual = await self._read(driver, prop)
        if actual is None:
            return not self._lost.is_set()
        self._last[prop.name] = actual
        self._written[prop.name] = (value, actual)
        await self._report(prop, actual)
        return True


def _next_deadline(deadline: float, period_s: float, now: float) -> float:
    """The next deadline after ``deadline``; cycles missed while busy are skipped."""
    deadline += period_s
    return deadline if deadline > now else now + period_s


def _why(error: BaseException) -> str:
    message = getattr(error, "message", None)
    return message if isinstance(message, str) else (str(error) or type(error).__name__)
