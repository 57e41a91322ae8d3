"""The built-in mappers: which driver factory serves which ``protocolName``.

Imports each driver only when asked for (the Modbus one pulls in pymodbus). Must not start
anything.
"""

from __future__ import annotations

from typing import Final

from edgeweave.aio.clock import Clock
from edgeweave.errors import ConfigError
from edgeweave.mappers.driver import DriverFactory

PROTOCOLS: Final = ("modbus", "virtual")


def driver_factory(protocol: str, *, clock: Clock, seed: int | None = None) -> DriverFactory:
    """The factory for ``protocol``; ``seed`` makes virtual devices repeatable."""
    if protocol == "modbus":
        from edgeweave.mappers.modbus.driver import modbus_driver

        return modbus_driver
    if protocol == "virtual":
        from edgeweave.mappers.virtual import virtual_driver_factory

        return virtual_driver_factory(clock, seed=seed)
    raise ConfigError(
        f"no built-in mapper for protocol {protocol!r}; one of {', '.join(PROTOCOLS)}"
    )
