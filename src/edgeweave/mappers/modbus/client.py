"""The Modbus TCP client adapter: the one module that talks to pymodbus's client.

:class:`ModbusTcpConnection` reads and writes registers and bits of one unit (``slaveID``)
behind one TCP connection and translates pymodbus's outcomes into ours:

- cannot connect, connection lost, no answer in time → :class:`DeviceUnavailable`;
- an exception response (illegal address, illegal value, ...) or any other pymodbus error →
  :class:`DeviceRefused`.

pymodbus's own reconnect loop is switched off (``reconnect_delay=0``) and requests are not
retried: the runner owns reconnects and their backoff. pymodbus 3.16 takes ``device_id=``
(older releases: ``slave=``). Must not know about properties, scales or data types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from edgeweave.mappers.errors import DeviceRefused, DeviceUnavailable
from edgeweave.mappers.modbus.codec import RegisterKind

# Modbus exception codes, for messages
_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target did not respond",
}


class ModbusTcpConnection:
    """One connection to ``host:port`` for unit ``unit``; ``connect()`` before use."""

    def __init__(self, host: str, port: int, unit: int, *, timeout_s: float) -> None:
        self.address = f"{host}:{port}"
        self.unit = unit
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0
        )

    async def connect(self) -> None:
        try:
            connected = await self._client.connect()
        except (ModbusException, OSError) as e:
            raise DeviceUnavailable(f"cannot connect to {self.address}: {e}") from e
        if not connected:
            raise DeviceUnavailable(f"cannot connect to the Modbus device at {self.address}")

    def close(self) -> None:
        self._client.close()

    async def read_registers(self, kind: RegisterKind, address: int, count: int) -> list[int]:
        if kind is RegisterKind.HOLDING:
            call = self._client.read_holding_registers
        elif kind is RegisterKind.INPUT:
            call = self._client.read_input_registers
        else:
            raise ValueError(f"{kind.value} holds bits, not registers")
        what = f"read {count} {kind.value} at {address}"
        response = await self._execute(
            what, lambda: call(address, count=count, device_id=self.unit)
        )
        return list(response.registers[:count])

    async def read_bits(self, kind: RegisterKind, address: int, count: int) -> list[bool]:
        if kind is RegisterKind.COIL:
            call = self._client.read_coils
        elif kind is RegisterKind.DISCRETE_INPUT:
            call = self._client.read_discrete_inputs
        else:
            raise ValueError(f"{kind.value} holds registers, not bits")
        what = f"read {count} {kind.value} at {address}"
        response = await self._execute(
            what, lambda: call(address, count=count, device_id=self.unit)
        )
        return [bool(b) for b in response.bits[:count]]

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        what = f"write HoldingRegister at {address}"
        if len(values) == 1:
            await self._execute(
                what, lambda: self._client.write_register(address, values[0], device_id=self.unit)
            )
        else:
            words = list(values)
            await self._execute(
                what, lambda: self._client.write_registers(address, words, device_id=self.unit)
            )

    async def write_coil(self, address: int, value: bool) -> None:
        what = f"write CoilRegister at {address}"
        await self._execute(
            what, lambda: self._client.write_coil(address, value, device_id=self.unit)
        )

    async def _execute(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        where = f"Modbus device {self.address} unit {self.unit}"
        if not self._client.connected:  # pymodbus would try to connect again on its own
            raise DeviceUnavailable(f"{where}: not connected")
        try:
            response = await request()
        except (ConnectionException, ModbusIOException) as e:
            raise DeviceUnavailable(f"{where}: {what}: {e}") from e
        except ModbusException as e:
            raise DeviceRefused(f"{where}: {what}: {e}") from e
        except OSError as e:
            raise DeviceUnavailable(f"{where}: {what}: {e}") from e
        if response.isError():
            code = getattr(response, "exception_code", 0)
            name = _EXCEPTION_NAMES.get(code, "error")
            raise DeviceRefused(f"{where}: {what}: exception {code} ({name})")
        return response
