"""The agent's device side, started once the node holds a Device: twin store, bus, mappers.

:func:`serve_devices` is started by the agent once the local store holds a ``Device`` (a
node without devices loads neither the twin engine nor an MQTT library — it stays lean). It
opens the twin store, the embedded broker (unless ``devices.mqtt_url`` names an external
one), the twin host, the reporter and the bus connection, and tells the runtime which mapper
apps to run. Everything runs until cancelled, then closes in reverse order.

Must not know the link, or decide anything about twins (that is :mod:`.host`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeweave.aio.backoff import Backoff
from edgeweave.config.edge import DeviceSettings
from edgeweave.edge.devices.bus import BusState, OpenClient, run_bus
from edgeweave.edge.devices.host import DeviceHost, OnDevices, WaitPersisted
from edgeweave.edge.devices.info import DeviceInfo
from edgeweave.edge.devices.mapperapps import MapperApps
from edgeweave.edge.devices.reporter import Reporter
from edgeweave.edge.devices.twinstore import open_twin_store
from edgeweave.edge.outbox import Outbox
from edgeweave.edge.store import EdgeStore
from edgeweave.protocol.refs import ResourceRef

log = logging.getLogger(__name__)


@dataclass
class Devices:
    """What the rest of the agent sees of the device side (filled in once it started)."""

    host: DeviceHost | None = None
    bus: BusState | None = None
    mapper_apps: list[dict[str, Any]] = field(default_factory=list)


async def serve_devices(
    node: str,
    data_dir: Path,
    opts: DeviceSettings,
    store: EdgeStore,
    outbox: Outbox,
    changed: asyncio.Event,
    changed_objects: dict[ResourceRef, dict[str, Any] | None],
    devices: Devices,
    *,
    on_bus: Callable[[str], None],
    on_mappers: Callable[[], None],
    wait_persisted: WaitPersisted | None = None,
) -> None:
    """Until cancelled. ``changed`` is set when held Device/DeviceModel objects change, and
    ``changed_objects`` holds which ones (None: deleted; the sync adds, the twin host takes
    them), possibly before they are on disk: ``wait_persisted`` waits until they are."""
    changed.clear()  # the host starts with a full reconcile
    changed_objects.clear()
    async with contextlib.AsyncExitStack() as stack:
        twins = await open_twin_store(data_dir / "twins.db")
        stack.push_async_callback(twins.aclose)
        url = opts.mqtt_url
        open_client: OpenClient | None = None  # over MQTT to ``url``
        if not url:
            from edgeweave.edge.devices.broker import open_embedded_broker  # amqtt: only here

            broker = await stack.enter_async_context(
                open_embedded_broker(opts.broker_host, opts.broker_port)
            )
            url, open_client = broker.url, broker.open_client  # in process
        loop = asyncio.get_running_loop()
        reporter = Reporter(outbox.append_nowait, outbox.wait_durable, clock=loop.time)

        def emit_event(payload: dict[str, Any]) -> None:
            outbox.append_nowait("event", payload)

        host = DeviceHost(
            node,
            store,
            twins,
            reporter,
            emit_event,
            max_payload_bytes=opts.max_payload_bytes,
            wait_persisted=wait_persisted,
        )
        host.changed, host.changed_objects = changed, changed_objects
        await host.load()
        if opts.start_mappers:
            host.on_devices = _mapper_updater(
                MapperApps(data_dir, node, lambda: url), devices, on_mappers
            )
        devices.host, devices.bus = host, BusState(url)
        on_bus(url)
        backoff = Backoff(opts.backoff_base_s, opts.backoff_cap_s)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(host.run_reconcile(), name="agent-devices-reconcile")
            tasks.create_task(host.run_flush(), name="agent-devices-flush")
            tasks.create_task(reporter.run(), name="agent-devices-reporter")
            tasks.create_task(
                run_bus(host, devices.bus, backoff, open_client), name="agent-devices-bus"
            )


def _mapper_updater(
    mappers: MapperApps, devices: Devices, on_mappers: Callable[[], None]
) -> OnDevices:
    def update(infos: Mapping[ResourceRef, DeviceInfo], touched: set[ResourceRef] | None) -> bool:
        changed = mappers.update(infos, touched)
        if changed:
            devices.mapper_apps = mappers.apps()
            on_mappers()  # the runtime starts or stops mapper apps
        return changed

    return update
