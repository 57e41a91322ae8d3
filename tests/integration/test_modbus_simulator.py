"""The Modbus driver against the thermostat simulator: real pymodbus client and server on
loopback TCP, real registers, the example manifests' visitors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from mapper_rig import example_docs

from edgeweave.mappers.config import DeviceConfig, parse_mapper_config
from edgeweave.mappers.errors import DeviceRefused, DeviceUnavailable
from edgeweave.mappers.modbus.client import ModbusTcpConnection
from edgeweave.mappers.modbus.codec import RegisterKind
from edgeweave.mappers.modbus.driver import ModbusDriver, modbus_driver
from edgeweave.mappers.modbus.simulator import open_thermostat_simulator


class FakeTime:
    """The simulator's clock, moved by the test (the room's physics is time-driven)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def thermostat(name: str, port: int, **config: Any) -> DeviceConfig:
    docs = example_docs()
    device = docs[name]
    device["spec"]["protocol"]["configData"].update(port=port, **config)
    doc = {
        "node": "node-a",
        "protocol": "modbus",
        "devices": [{"device": device, "model": docs["thermostat-model"]}],
    }
    return parse_mapper_config(doc).devices[0]


def props(device: DeviceConfig) -> Callable[[str], Any]:
    def get(name: str) -> Any:
        prop = device.property(name)
        assert prop is not None
        return prop

    return get


async def test_a_setpoint_written_reads_back_and_the_room_moves_toward_it() -> None:
    clock = FakeTime()
    async with open_thermostat_simulator(units=(1, 2), seed=1, now=clock) as sim:
        device = thermostat("thermostat-1", sim.port)
        prop = props(device)
        driver = modbus_driver(device)
        await driver.open()
        try:
            assert await driver.read(prop("target-temperature")) == "21"
            await driver.write(prop("target-temperature"), "26.5")
            assert await driver.read(prop("target-temperature")) == "26.5"
            assert sim.thermostats[1].setpoint_c == 26.5
            assert sim.thermostats[2].setpoint_c == 21.0  # the other unit is untouched

            before = float(await driver.read(prop("temperature")))
            assert await driver.read(prop("heating")) == "true"
            clock.now += 300.0  # one time constant
            after = float(await driver.read(prop("temperature")))
            assert 26.5 - after < (26.5 - before) * 0.5
            clock.now += 3000.0
            assert float(await driver.read(prop("temperature"))) == pytest.approx(26.5, abs=0.3)
            assert await driver.read(prop("heating")) == "false"
        finally:
            await driver.aclose()


async def test_the_float32_registers_carry_the_same_reading_as_the_int16_one() -> None:
    clock = FakeTime()
    async with open_thermostat_simulator(units=(1, 2), seed=2, now=clock) as sim:
        first = thermostat("thermostat-1", sim.port)  # int16 x 0.1 in input register 0
        second = thermostat("thermostat-2", sim.port)  # float32 in input registers 1-2
        d1, d2 = modbus_driver(first), modbus_driver(second)
        await d1.open()
        await d2.open()
        try:
            for _ in range(5):
                clock.now += 17.0
                reading = await d2.read(props(second)("temperature"))
                assert len(reading.partition(".")[2]) <= 1  # the shortest float32 decimal
            connection = ModbusTcpConnection("127.0.0.1", sim.port, 2, timeout_s=1)
            await connection.connect()
            try:
                words = await connection.read_registers(RegisterKind.INPUT, 0, 3)
            finally:
                connection.close()
            assert words[0] == round(float(reading) * 10)
            assert await d1.read(props(first)("temperature"))
        finally:
            await d1.aclose()
            await d2.aclose()


async def test_the_device_refuses_bad_values_readonly_coils_and_unknown_units() -> None:
    async with open_thermostat_simulator(units=(1,), seed=3) as sim:
        device = thermostat("thermostat-1", sim.port)
        prop = props(device)
        driver = modbus_driver(device)
        await driver.open()
        try:
            with pytest.raises(DeviceRefused, match=r"exception 3 \(illegal data value\)"):
                await driver.write(prop("target-temperature"), "40")
            with pytest.raises(DeviceRefused, match="does not fit int16"):
                await driver.write(prop("target-temperature"), "5000")
            assert sim.thermostats[1].setpoint_c == 21.0
        finally:
            await driver.aclose()
        coil = ModbusTcpConnection("127.0.0.1", sim.port, 1, timeout_s=1)
        await coil.connect()
        try:
            with pytest.raises(DeviceRefused, match=r"exception 2 \(illegal data address\)"):
                await coil.write_coil(0, True)
        finally:
            coil.close()
        stranger = modbus_driver(thermostat("thermostat-1", sim.port, slaveID=9))
        await stranger.open()
        try:
            with pytest.raises(DeviceRefused, match="exception 11"):
                await stranger.read(prop("temperature"))
        finally:
            await stranger.aclose()


async def test_a_device_that_went_away_is_unavailable() -> None:
    async with open_thermostat_simulator(units=(1,)) as sim:
        device = thermostat("thermostat-1", sim.port, timeout=200)
        driver: ModbusDriver = modbus_driver(device)
        await driver.open()
    try:
        with pytest.raises(DeviceUnavailable):  # "not connected", or no answer in time
            await driver.read(props(device)("temperature"))
    finally:
        await driver.aclose()
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        await modbus_driver(device).open()


async def test_the_simulator_uses_no_deprecated_pymodbus_api(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # pymodbus announces its deprecated datastore classes in its log, not as warnings
    with caplog.at_level(logging.DEBUG, logger="pymodbus"):
        async with open_thermostat_simulator(units=(1, 2)):
            pass
    assert not [r for r in caplog.records if "deprecated" in r.getMessage().lower()]
