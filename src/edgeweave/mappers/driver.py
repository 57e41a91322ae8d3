"""The :class:`Driver` protocol: what a mapper author writes for one device.

A driver talks to one device. The runner builds it with a :data:`DriverFactory` from the
device's :class:`~edgeweave.mappers.config.DeviceConfig`, then calls ``open()``, ``read()``
and ``write()`` any number of times and ``aclose()`` once. The runner guarantees:

- calls on one driver never overlap (one at a time, so a driver needs no lock);
- every call runs under a timeout; a call that overruns counts as the device being unavailable;
- after ``aclose()`` (or a failed ``open()``) the driver is dropped; the runner builds a new
  one from the factory to reconnect.

A driver raises :class:`~edgeweave.mappers.errors.DeviceUnavailable` when the device cannot
be reached and :class:`~edgeweave.mappers.errors.DeviceRefused` when it refuses a request or a
value cannot be encoded for it; any other exception is logged as a driver bug and treated like
a refusal. A factory checks the config and raises :class:`~edgeweave.errors.ConfigError`
naming the field; building a driver must not do I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edgeweave.mappers.config import DeviceConfig, PropertyConfig


class Driver(Protocol):
    async def open(self) -> None:
        """Connect to the device (DeviceUnavailable if it cannot be reached)."""
        ...

    async def read(self, prop: PropertyConfig) -> str:
        """The property's current value, as the string reported on the bus."""
        ...

    async def write(self, prop: PropertyConfig, value: str) -> None:
        """Set a ``ReadWrite`` property to ``value`` (the desired value, as sent)."""
        ...

    async def aclose(self) -> None:
        """Disconnect; must not raise."""
        ...


DriverFactory = Callable[[DeviceConfig], Driver]
