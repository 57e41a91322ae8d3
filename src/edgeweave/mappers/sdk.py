"""The mapper SDK: write a :class:`Driver` for your device, hand its factory to
:func:`run_mapper`; the runner does the rest.

What the runner does for a driver (see :mod:`.runner` and :mod:`.device`): reads the config
file the agent writes; per device opens a driver (reporting ``online``, or ``offline`` and
retrying with backoff when it cannot); reads each property at its ``collectCycle`` and
publishes ``$hw/events/device/{ns}/{name}/twin/update`` at its ``reportCycle`` (both in
milliseconds); writes desired values of ``ReadWrite`` properties from deltas and
``twin/get`` results and reports the value read back at once; reloads the file on
``membership/updated``; survives bad messages and broker restarts; stops on SIGTERM/SIGINT.

A complete mapper (docs/mappers.md walks through it)::

    from edgeweave.mappers.sdk import DeviceConfig, Driver, PropertyConfig, run_mapper

    class LampDriver:
        def __init__(self, device: DeviceConfig) -> None:
            self.values = {p.name: "false" for p in device.properties}

        async def open(self) -> None: ...
        async def read(self, prop: PropertyConfig) -> str:
            return self.values[prop.name]
        async def write(self, prop: PropertyConfig, value: str) -> None:
            self.values[prop.name] = value
        async def aclose(self) -> None: ...

    run_mapper(LampDriver, protocol="lamp")   # parses --mqtt, --node and --config

Must stay a thin façade: names re-exported for mapper authors, and the command-line entry.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from edgeweave.aio.clock import Clock
from edgeweave.mappers.config import DeviceConfig, MapperSettings, PropertyConfig
from edgeweave.mappers.driver import Driver, DriverFactory
from edgeweave.mappers.errors import DeviceError, DeviceRefused, DeviceUnavailable
from edgeweave.mappers.fields import ConfigFields
from edgeweave.mappers.runner import MapperRunner
from edgeweave.mappers.values import format_value, parse_number, parse_value

__all__ = [
    "ConfigFields",
    "DeviceConfig",
    "DeviceError",
    "DeviceRefused",
    "DeviceUnavailable",
    "Driver",
    "DriverFactory",
    "MapperRunner",
    "MapperSettings",
    "PropertyConfig",
    "format_value",
    "parse_number",
    "parse_value",
    "run_mapper",
    "serve",
]


async def serve(
    factory: DriverFactory,
    *,
    config_path: Path,
    mqtt_url: str,
    node: str,
    protocol: str = "",
    clock: Clock | None = None,
    settings: MapperSettings | None = None,
) -> None:
    """Run a mapper until SIGTERM or SIGINT (ConfigError if the config is unusable)."""
    runner = MapperRunner(
        config_path=config_path,
        mqtt_url=mqtt_url,
        node=node,
        factory=factory,
        protocol=protocol,
        clock=clock,
        settings=settings,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
    try:
        await runner.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_mapper(
    factory: DriverFactory, *, protocol: str = "", argv: Sequence[str] | None = None
) -> None:
    """The ``main`` of a stand-alone mapper: ``--mqtt URL --node NODE --config FILE``."""
    parser = argparse.ArgumentParser(description=f"the {protocol or 'device'} mapper")
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1884", help="the agent's bus")
    parser.add_argument("--node", required=True, help="the node whose devices to serve")
    parser.add_argument("--config", type=Path, required=True, help="the agent's mapper config")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(
        serve(
            factory, config_path=args.config, mqtt_url=args.mqtt, node=args.node, protocol=protocol
        )
    )
