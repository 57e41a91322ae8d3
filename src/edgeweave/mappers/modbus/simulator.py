"""A Modbus TCP server simulating smart-building thermostats, one per unit id (``slaveID``).

Register map of every unit (protocol addresses, 0-based — pymodbus 3.16's ``SimData`` takes
protocol addresses directly, unlike its old datastore whose block at address 1 served
protocol address 0):

===================== ======= =====================================================
register              address value
===================== ======= =====================================================
HoldingRegister       0       setpoint, °C x 10, int16 (writable, 5.0..35.0 °C;
                              outside: exception 3 "illegal data value")
InputRegister         0       room temperature, °C x 10, int16
InputRegister         1-2     room temperature, °C, float32 (high word first)
CoilRegister          0       heating on (read-only: writing it gets exception 2)
DiscreteInputRegister 0       fault (always off)
===================== ======= =====================================================

The room temperature follows :class:`~.thermostat.Thermostat` (first-order drift toward the
setpoint plus sensor noise); it is brought up to date whenever a register is read, so no
background task runs. ``speed`` compresses time; ``now`` (a monotonic clock) and ``seed``
make runs repeatable. A request for another unit id is answered with exception 11 ("gateway
target device failed to respond"), as a Modbus gateway would.

Uses pymodbus's current ``SimData``/``SimDevice`` API (no deprecated datastore classes).
Must not be imported by the mapper itself: it is a test and demo tool
(``edgeweave mapper simulate modbus``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edgeweave.errors import ConfigError
from edgeweave.mappers.modbus.thermostat import Thermostat, ThermostatSettings

SETPOINT_REGISTER = 0  # holding
TEMPERATURE_REGISTER = 0  # input, int16 x 10
TEMPERATURE_FLOAT_REGISTER = 1  # input, float32 over 1-2
HEATING_COIL = 0
FAULT_INPUT = 0
_WRITE_REGISTERS = (6, 16)  # function codes
_WRITE_COILS = (5, 15)
_READ_INPUT_REGISTERS = 4
_READ_BITS = (1, 2)


@dataclass
class ThermostatSimulator:
    host: str
    port: int
    thermostats: dict[int, Thermostat] = field(default_factory=dict)


def _int16(value: float) -> int:
    """°C x 10 as the unsigned 16-bit word of an int16."""
    return round(value * 10) & 0xFFFF


def _from_int16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def _float32_words(value: float) -> tuple[int, int]:
    data = struct.pack(">f", value)
    return int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")


class _Unit:
    """Keeps one unit's registers in step with its thermostat (pymodbus calls ``action``)."""

    def __init__(self, thermostat: Thermostat, now: Callable[[], float]) -> None:
        self.thermostat = thermostat
        self._now = now

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        t = self.thermostat
        if function_code in _WRITE_REGISTERS:
            if set_values and address <= SETPOINT_REGISTER < address + count:
                word = int(set_values[SETPOINT_REGISTER - address])
                try:
                    t.set_setpoint(_from_int16(word) / 10, self._now())
                except ValueError:
                    return ExcCodes.ILLEGAL_VALUE
            return None
        if function_code in _WRITE_COILS:
            return ExcCodes.ILLEGAL_ADDRESS  # the heating coil is the thermostat's output
        if function_code == _READ_INPUT_REGISTERS:
            reading = t.measure(self._now())
            base = TEMPERATURE_REGISTER - start_address
            registers[base] = _int16(reading)
            hi, lo = _float32_words(reading)
            registers[TEMPERATURE_FLOAT_REGISTER - start_address] = hi
            registers[TEMPERATURE_FLOAT_REGISTER - start_address + 1] = lo
        elif function_code in _READ_BITS:
            t.advance(self._now())
            if function_code == 1:  # coils: bit 0 of the block's first word
                word = registers[HEATING_COIL // 16 - start_address]
                heating_bit = 1 << (HEATING_COIL % 16)
                word = word | heating_bit if t.heating else word & ~heating_bit
                registers[HEATING_COIL // 16 - start_address] = word
        return None


def _sim_device(unit: int, thermostat: Thermostat, action: _Unit) -> SimDevice:
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(HEATING_COIL, values=[False], datatype=DataType.BITS, readonly=True)],
            [SimData(FAULT_INPUT, values=[False], datatype=DataType.BITS, readonly=True)],
            [SimData(SETPOINT_REGISTER, values=_int16(thermostat.setpoint_c),
                     datatype=DataType.UINT16)],
            [
                SimData(TEMPERATURE_REGISTER, values=_int16(thermostat.temperature_c),
                        datatype=DataType.UINT16),
                SimData(TEMPERATURE_FLOAT_REGISTER, values=thermostat.temperature_c,
                        datatype=DataType.FLOAT32),
            ],
        ),
        action=action.action,
    )  # fmt: skip


async def _no_such_unit(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _catch_all() -> SimDevice:
    """Unit id 0 stands for every id not simulated: answer like a gateway without it."""
    return SimDevice(
        id=0,
        simdata=(
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, count=4, datatype=DataType.UINT16)],
            [SimData(0, count=4, datatype=DataType.UINT16)],
        ),
        action=_no_such_unit,
    )


def parse_units(text: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``; ConfigError for anything but unit ids 1..247."""
    units: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if not part.isdigit() or not 1 <= int(part) <= 247:
            raise ConfigError(f"--units: {part!r} is not a Modbus unit id (1..247)")
        if int(part) not in units:
            units.append(int(part))
    if not units:
        raise ConfigError("--units: name at least one unit id, e.g. 1,2")
    return tuple(units)


@contextlib.asynccontextmanager
async def open_thermostat_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    units: Sequence[int] = (1,),
    speed: float = 1.0,
    seed: int | None = None,
    now: Callable[[], float] = time.monotonic,
    settings: ThermostatSettings | None = None,
) -> AsyncIterator[ThermostatSimulator]:
    """Serve thermostats on ``host:port`` (port 0: any free port, see ``.port``)."""
    if speed <= 0:
        raise ConfigError(f"--speed must be > 0, not {speed}")
    rng = random.Random(seed)  # noqa: S311 - simulated sensor noise, not security
    sim = ThermostatSimulator(host, port)
    devices = [_catch_all()]
    for index, unit in enumerate(units):
        thermostat = Thermostat(
            now=now(),
            rng=random.Random(rng.random()),  # noqa: S311 - as above
            setpoint_c=21.0,
            temperature_c=18.0 + 0.5 * index,
            speed=speed,
            settings=settings,
        )
        sim.thermostats[unit] = thermostat
        devices.append(_sim_device(unit, thermostat, _Unit(thermostat, now)))
    server = ModbusTcpServer(devices, address=(host, port))
    try:
        await server.serve_forever(background=True)
    except RuntimeError as e:
        await server.shutdown()  # type: ignore[no-untyped-call]
        raise ConfigError(f"cannot listen on {host}:{port}: {e}") from e
    try:
        sockets = getattr(server.transport, "sockets", None) or []
        if sockets:
            sim.port = sockets[0].getsockname()[1]
        yield sim
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def serve_until_stopped(
    host: str, port: int, *, units: Sequence[int], speed: float, seed: int | None
) -> None:
    """Serve until SIGTERM or SIGINT; print ``{"host", "port", "units"}`` once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_thermostat_simulator(
            host, port, units=units, speed=speed, seed=seed
        ) as sim:
            ready = {"host": sim.host, "port": sim.port, "units": list(sim.thermostats)}
            print(json.dumps(ready), flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
