"""Virtual devices: bounded, repeatable sensors, occupancy with arrivals, actuators."""

from __future__ import annotations

import dataclasses
import random
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.aio.clock import ManualClock
from edgeweave.mappers.config import DeviceConfig, PropertyConfig
from edgeweave.mappers.errors import DeviceRefused
from edgeweave.mappers.fields import ConfigFields
from edgeweave.mappers.virtual import Room, Sensor, VirtualDriver, virtual_driver_factory


def prop(
    name: str, model_type: str, visitor: dict[str, Any], *, rw: bool = False
) -> PropertyConfig:
    return PropertyConfig(
        name=name,
        model_type=model_type,
        twin_type={"INT": "int", "FLOAT": "float", "BOOLEAN": "boolean"}[model_type],
        read_write=rw,
        collect_cycle_ms=1000,
        report_cycle_ms=1000,
        report_to_cloud=True,
        visitor=visitor,
        where=f"properties.{name}",
    )


def room_device(config_data: dict[str, Any], *props: PropertyConfig) -> DeviceConfig:
    return DeviceConfig(
        namespace="default",
        name="room-1",
        model_name="room-model",
        protocol="virtual",
        config_data=config_data,
        properties=props,
        where="devices[0].device",
    )


TEMPERATURE = prop(
    "temperature",
    "FLOAT",
    {"kind": "sensor", "initial": 21.0, "drift": 0.5, "noise": 0.2, "min": 15, "max": 30},
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    steps=st.lists(st.floats(0.001, 100_000), min_size=1, max_size=40),
    drift=st.floats(0, 50),
)
def test_a_sensor_stays_within_min_and_max_whatever_the_read_times(
    seed: int, steps: list[float], drift: float
) -> None:
    fields = ConfigFields(
        {"initial": 21, "drift": drift, "noise": drift, "min": 15, "max": 30}, "configData"
    )
    sensor = Sensor(fields, TEMPERATURE, random.Random(seed), now=0.0)
    now = 0.0
    for step in steps:
        now += step
        assert 15 <= sensor.read(now, occupants=0) <= 30


def test_a_sensor_wanders_around_its_level_and_rises_with_occupants() -> None:
    fields = ConfigFields(
        {"initial": 420, "drift": 3, "noise": 0, "perOccupant": 40, "tauSeconds": 60}, "c"
    )
    co2 = prop("co2", "FLOAT", {})
    sensor = Sensor(fields, co2, random.Random(7), now=0.0)
    empty = [sensor.read(float(t), occupants=0) for t in range(1, 3001)]
    assert abs(statistics.mean(empty) - 420) < 15
    assert statistics.pstdev(empty) > 1  # it moves
    busy = [sensor.read(float(t), occupants=10) for t in range(3001, 6001)]
    assert abs(statistics.mean(busy[600:]) - 820) < 20


def test_the_model_bounds_are_the_default_sensor_bounds() -> None:
    bounded = dataclasses.replace(TEMPERATURE, minimum=10.0, maximum=30.0)
    fields = ConfigFields({"initial": 100, "drift": 0}, "c")
    sensor = Sensor(fields, bounded, random.Random(1), 0.0)
    assert sensor.read(1.0, occupants=0) == 30.0


def test_occupancy_arrives_and_leaves_within_capacity() -> None:
    room = Room(
        ConfigFields({"capacity": 5, "arrivalsPerMinute": 6, "meanStayMinutes": 10}, "c"),
        random.Random(3),
        now=0.0,
    )
    counts = [room.advance(float(t)) for t in range(0, 36_000, 10)]
    assert max(counts) == 5  # the queue would hold 60 on average: capped
    assert min(counts[100:]) >= 0
    quiet = Room(
        ConfigFields({"arrivalsPerMinute": 0.5, "meanStayMinutes": 4}, "c"), random.Random(4), 0.0
    )
    counts = [quiet.advance(float(t)) for t in range(0, 360_000, 30)]
    assert 1.5 < statistics.mean(counts) < 2.5  # M/M/inf: arrivals x stay = 2
    assert 0 in counts and max(counts) > 2


async def test_the_same_seed_and_read_times_give_the_same_values() -> None:
    device = room_device(
        {"arrivalsPerMinute": 3},
        TEMPERATURE,
        prop("people", "INT", {"kind": "occupancy"}),
        prop("occupied", "BOOLEAN", {"kind": "occupancy"}),
    )

    async def run() -> list[str]:
        clock = ManualClock()
        driver = virtual_driver_factory(clock, seed=42)(device)
        values = []
        for _ in range(50):
            clock.advance(7.0)
            for p in device.properties:
                values.append(await driver.read(p))
        return values

    first, second = await run(), await run()
    assert first == second
    people = first[1::3]
    occupied = first[2::3]
    assert occupied == ["true" if int(n) > 0 else "false" for n in people]
    assert all(len(v.partition(".")[2]) <= 2 for v in first[0::3])  # 2 decimals


async def test_an_actuator_returns_what_was_written_in_canonical_form() -> None:
    lights = prop("lights", "BOOLEAN", {"kind": "actuator", "initial": False}, rw=True)
    level = prop("level", "FLOAT", {"kind": "actuator", "initial": 0.5}, rw=True)
    device = room_device({}, lights, level)
    driver = VirtualDriver(device, ManualClock(), random.Random(1))
    assert await driver.read(lights) == "false"
    assert await driver.read(level) == "0.5"
    await driver.write(lights, "True")
    await driver.write(level, "21.50")
    assert await driver.read(lights) == "true"
    assert await driver.read(level) == "21.5"
    with pytest.raises(DeviceRefused, match="not a number"):
        await driver.write(level, "warm")
    with pytest.raises(DeviceRefused, match="not an actuator"):
        await driver.write(TEMPERATURE, "22")


async def test_a_device_seed_in_configdata_wins_over_the_command_line_seed() -> None:
    people = prop("people", "INT", {"kind": "occupancy"})

    async def reads(config_data: dict[str, Any], seed: int) -> list[str]:
        clock = ManualClock()
        driver = virtual_driver_factory(clock, seed=seed)(room_device(config_data, people))
        values = []
        for _ in range(40):
            clock.advance(60.0)
            values.append(await driver.read(people))
        return values

    busy = {"arrivalsPerMinute": 5, "capacity": 100}
    assert await reads({**busy, "seed": 5}, 1) == await reads({**busy, "seed": 5}, 2)
    assert await reads(busy, 1) != await reads(busy, 2)
