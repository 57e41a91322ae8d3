"""The mapper process: the config file's devices on one side, the agent's MQTT bus on the other.

:class:`MapperRunner` is a mapper's composition root. It loads the config file
(:mod:`.config`), runs a :class:`~.device.DeviceWorker` per device with the protocol's driver
factory, and keeps one MQTT connection to the agent's bus (or an external broker), over which
it:

- subscribes to ``$hw/events/device/+/+/twin/update/delta``, ``.../twin/get/result`` and
  ``$hw/events/node/{node}/membership/updated``;
- on each (re)connect re-reads the config file (it may have changed meanwhile), says each
  device's state and sends ``twin/get`` for it, so desired values set while the mapper was
  away are written;
- hands each delta (and ``twin/get`` result) to the device's worker at once — this is on the
  cloud → device → reported path, so nothing here waits for a cycle;
- on ``membership/updated`` reloads the file: stops the devices that left or changed, starts
  the new ones.

A message it cannot use (bad JSON, unknown device, a value the twin limits refuse) is logged
and counted in ``bad_messages``; nothing a peer sends can stop the runner. A broken broker
connection is retried with backoff while the devices keep running (readings in between are
dropped: each is sent again at its next report cycle). :meth:`MapperRunner.request_stop` (the
CLI wires SIGTERM and SIGINT to it) ends :meth:`MapperRunner.run`, which closes every driver.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from edgeweave.aio.backoff import Backoff
from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.aio.tasks import Supervisor, open_supervisor
from edgeweave.errors import BusError, ConfigError
from edgeweave.mappers.bus import BusPublisher
from edgeweave.mappers.config import MapperConfig, MapperSettings, load_mapper_config
from edgeweave.mappers.device import OFFLINE, DeviceWorker
from edgeweave.mappers.driver import DriverFactory
from edgeweave.transport.mqtt import MqttMessage, open_mqtt_client, parse_mqtt_url
from edgeweave.twin import payloads
from edgeweave.twin.errors import TwinError
from edgeweave.twin.messages import ErrorResult, TwinGetResult
from edgeweave.twin.topics import (
    DeviceAction,
    DeviceTopic,
    NodeAction,
    NodeTopic,
    node_topic,
    parse_topic,
)

log = logging.getLogger(__name__)

DELTA_FILTER = "$hw/events/device/+/+/twin/update/delta"
GET_RESULT_FILTER = "$hw/events/device/+/+/twin/get/result"


class MapperRunner:
    def __init__(
        self,
        *,
        config_path: Path,
        mqtt_url: str,
        node: str,
        factory: DriverFactory,
        protocol: str = "",
        clock: Clock | None = None,
        settings: MapperSettings | None = None,
        client_id: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.mqtt_url = mqtt_url
        self.node = node
        self.protocol = protocol  # when set, the file must be for this protocol
        self._factory = factory
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._settings = settings if settings is not None else MapperSettings()
        self._client_id = client_id or f"edgeweave-mapper-{protocol or 'any'}-{node}"
        self._bus = BusPublisher(self._clock)
        self._workers: dict[str, DeviceWorker] = {}
        self._tasks: dict[str, asyncio.Task[object]] = {}
        self._supervisor: Supervisor | None = None
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.bad_messages = 0
        self.reloads = 0
        self.bus_connections = 0

    def request_stop(self) -> None:
        """Make :meth:`run` return (safe to call from a signal handler)."""
        self._stop.set()

    def workers(self) -> dict[str, DeviceWorker]:
        return dict(self._workers)

    def statistics(self) -> dict[str, object]:
        return {
            "devices": {i: w.statistics() for i, w in self._workers.items()},
            "bad_messages": self.bad_messages,
            "reloads": self.reloads,
            "bus_connections": self.bus_connections,
            **self._bus.statistics(),
        }

    async def run(self) -> None:
        """Serve until :meth:`request_stop`; ConfigError if the file is unusable at start."""
        parse_mqtt_url(self.mqtt_url)  # a bad URL is a ConfigError now, not a retry loop
        config = self._load()
        async with open_supervisor(f"mapper {self.protocol or config.protocol}") as tasks:
            self._supervisor = tasks
            try:
                await self._apply(config)
                tasks.start(self._bus_loop, name="bus", restart=True)
                await self._stop.wait()
                log.info("stopping: closing %d devices", len(self._workers))
                for worker in self._workers.values():  # nobody serves them once we are gone
                    await self._bus.state_update(worker.config.ref, OFFLINE)
            finally:
                self._supervisor = None
        self._workers.clear()
        self._tasks.clear()
        log.info("stopped")

    # ------------------------------------------------------------ config

    def _load(self) -> MapperConfig:
        config = load_mapper_config(self.config_path)
        if config.node != self.node:
            raise ConfigError(
                f"{self.config_path}: the file is for node {config.node!r}, this mapper serves "
                f"node {self.node!r} (--node)"
            )
        if self.protocol and config.protocol != self.protocol:
            raise ConfigError(
                f"{self.config_path}: the file is for protocol {config.protocol!r}, this is "
                f"the {self.protocol!r} mapper"
            )
        for problem in config.problems:
            log.error("device left out: %s", problem)
        return config

    async def reload(self, why: str) -> None:
        """Re-read the config file and apply it; on a bad file keep serving the old one."""
        async with self._reload_lock:
            try:
                config = self._load()
            except ConfigError as e:
                log.error("not reloading (%s): %s", why, e.message)
                return
            self.reloads += 1
            log.info("reloading the config (%s): %d devices", why, len(config.devices))
            await self._apply(config)

    async def _apply(self, config: MapperConfig) -> None:
        wanted = {device.id: device for device in config.devices}
        for device_id, worker in list(self._workers.items()):
            device = wanted.get(device_id)
            if device is None or device.fingerprint != worker.config.fingerprint:
                await self._stop_worker(device_id)
        for device_id, device in wanted.items():
            if device_id in self._workers:
                continue
            try:
                self._factory(device)  # checks the protocol's configData; does no I/O
            except ConfigError as e:
                log.error("device %s left out: %s", device_id, e.message)
                continue
            worker = DeviceWorker(device, self._factory, self._bus, self._clock, self._settings)
            self._workers[device_id] = worker
            if self._supervisor is not None:
                self._tasks[device_id] = self._supervisor.start(
                    worker.run, name=f"device {device_id}", restart=True
                )
            if self._bus.connected:
                await worker.announce()

    async def _stop_worker(self, device_id: str) -> None:
        self._workers.pop(device_id, None)
        task = self._tasks.pop(device_id, None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # its driver is closed when this returns
        log.info("device %s stopped", device_id)

    # ------------------------------------------------------------ bus

    async def _bus_loop(self) -> None:
        backoff = Backoff(self._settings.bus_reconnect_base_s, self._settings.bus_reconnect_cap_s)
        filters = (
            DELTA_FILTER,
            GET_RESULT_FILTER,
            node_topic(self.node, NodeAction.MEMBERSHIP_UPDATED),
        )
        while True:
            try:
                async with open_mqtt_client(self.mqtt_url, client_id=self._client_id) as client:
                    await client.subscribe(*filters)
                    if self.bus_connections:
                        await self.reload("the bus reconnected")
                    self.bus_connections += 1
                    self._bus.attach(client)
                    log.info("connected to the bus at %s", self.mqtt_url)
                    backoff.reset()
                    for worker in list(self._workers.values()):
                        await worker.announce()
                    async for message in client:
                        await self.handle(message)
            except BusError as e:
                log.warning("bus: %s; reconnecting", e.message)
            finally:
                self._bus.detach()
            await self._clock.sleep(backoff.next_delay())

    async def handle(self, message: MqttMessage) -> None:
        """One message from the bus; logs and counts what it cannot use, never raises."""
        try:
            await self._handle(message)
        except TwinError as e:
            self.bad_messages += 1
            log.warning("ignored a bad message on %s: %s", message.topic, e.message)
        except Exception:
            self.bad_messages += 1
            log.exception("ignored a message on %s that could not be handled", message.topic)

    async def _handle(self, message: MqttMessage) -> None:
        topic = parse_topic(message.topic)
        if isinstance(topic, DeviceTopic):
            worker = self._workers.get(f"{topic.device.namespace}/{topic.device.name}")
            if worker is None or topic.action not in (
                DeviceAction.TWIN_DELTA,
                DeviceAction.TWIN_GET_RESULT,
            ):
                return  # another mapper's device
            if topic.action is DeviceAction.TWIN_DELTA:  # the delta only: the rest is not used
                delta = payloads.decode_delta_values(message.payload)
                if delta is not None:
                    worker.desire(delta)
                    return
            decoded = payloads.decode(topic.action, message.payload)
            if isinstance(decoded, TwinGetResult):
                worker.desire(
                    {
                        name: twin.expected.value
                        for name, twin in decoded.twin.items()
                        if twin.expected is not None and twin.expected.value
                    }
                )
            elif isinstance(decoded, ErrorResult):
                log.warning("device %s: %s (code %d)", worker.id, decoded.reason, decoded.code)
        elif (
            isinstance(topic, NodeTopic)
            and topic.node == self.node
            and topic.action is NodeAction.MEMBERSHIP_UPDATED
        ):
            await self.reload("membership updated")
