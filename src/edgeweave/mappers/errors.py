"""Device errors: what a driver raises when a device cannot be reached or refuses a request.

The runner decides from the type alone:

- :class:`DeviceUnavailable` — the device cannot be reached (connection refused or lost, no
  answer in time). The runner reports the device ``offline``, closes the driver and opens a
  new one after a backoff.
- :class:`DeviceRefused` — the device answered but would not do it (a Modbus exception
  response, a value out of range, an address it does not have). The device stays connected;
  the property is reported ``unhealthy`` until a read succeeds again.

Drivers translate their library's exceptions into these (``raise ... from e``). Must not
import any device library.
"""

from __future__ import annotations

from edgeweave.errors import EdgeweaveError


class DeviceError(EdgeweaveError):
    """A device request failed."""

    reason = "DeviceError"


class DeviceUnavailable(DeviceError):
    """The device cannot be reached; reconnect later."""

    reason = "DeviceUnavailable"


class DeviceRefused(DeviceError):
    """The device (or the driver, for a value it cannot encode) refused the request."""

    reason = "DeviceRefused"
