"""The mapper runner end to end: a real broker (embedded amqtt, or mosquitto), the Modbus
thermostat simulator over TCP, and the test playing the agent on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mapper_rig import AgentBus, Seen, open_agent_bus, open_amqtt_broker, unique, write_config

from edgeweave.aio.clock import ManualClock, SystemClock
from edgeweave.mappers.builtin import driver_factory
from edgeweave.mappers.config import MapperSettings
from edgeweave.mappers.modbus.simulator import ThermostatSimulator, open_thermostat_simulator
from edgeweave.mappers.runner import MapperRunner

START_MS = 1_700_000_000_000
SLOW_MS = 600_000  # cycles that do not fire again during a test: what arrives is on demand
FAST = MapperSettings(
    call_timeout_s=2.0,
    reconnect_base_s=0.05,
    reconnect_cap_s=0.2,
    bus_reconnect_base_s=0.05,
    bus_reconnect_cap_s=0.2,
)


@pytest.fixture(params=["amqtt", "mosquitto"])
async def broker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto_url")
        return
    async with open_amqtt_broker() as url:
        yield url


@contextlib.asynccontextmanager
async def running(runner: MapperRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runner.run(), name="mapper under test")
    try:
        yield task
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)


def modbus_runner(config: Path, url: str, node: str) -> MapperRunner:
    clock = SystemClock()
    return MapperRunner(
        config_path=config,
        mqtt_url=url,
        node=node,
        factory=driver_factory("modbus", clock=clock),
        protocol="modbus",
        clock=clock,
        settings=FAST,
    )


async def answer_twin_get(
    bus: AgentBus, device: str, expected: dict[str, str], value_type: str = "float"
) -> None:
    await bus.wait_for(
        lambda s: s.topic == f"$hw/events/device/{device}/twin/get", f"twin/get of {device}"
    )
    twin = {
        k: {"expected": {"value": v}, "metadata": {"type": value_type}} for k, v in expected.items()
    }
    await bus.publish(
        f"$hw/events/device/{device}/twin/get/result",
        {"event_id": "r1", "timestamp": int(time.time() * 1000), "twin": twin},
    )


def delta(prop: str, value: str) -> dict[str, object]:
    return {"event_id": unique("d"), "timestamp": int(time.time() * 1000), "twin": {},
            "delta": {prop: value}}  # fmt: skip


async def test_a_delta_reaches_the_thermostat_and_the_new_actual_comes_back_at_once(
    broker_url: str, tmp_path: Path
) -> None:
    ns, node = unique("ns"), unique("node")
    device = f"{ns}/thermostat-1"
    async with open_thermostat_simulator(units=(1, 2), seed=1) as sim:
        config = tmp_path / "modbus.json"
        write_config(config, node, "modbus", ["thermostat-1"], namespace=ns, port=sim.port,
                     cycle_ms=SLOW_MS)  # fmt: skip
        runner = modbus_runner(config, broker_url, node)
        async with open_agent_bus(broker_url) as bus, running(runner):
            await bus.wait_state(device, "online")
            # the expected value the agent holds is written at start
            await answer_twin_get(bus, device, {"target-temperature": "22.5"})
            await bus.wait_twin_update(device, "target-temperature", "22.5")
            assert sim.thermostats[1].setpoint_c == 22.5
            # the first collect reported every property, typed by the model
            update = await bus.wait_twin_update(device, "heating")
            assert update.json()["twin"]["heating"]["metadata"] == {"type": "boolean"}

            topic = f"$hw/events/device/{device}/twin/update/delta"
            latencies = []
            for value in ("23", "23.5", "19", "24.5", "20"):
                sent = await bus.publish(topic, delta("target-temperature", value))
                seen = await bus.wait_twin_update(device, "target-temperature", value)
                latencies.append((seen.at - sent) * 1000)
                assert sim.thermostats[1].setpoint_c == float(value)
            assert sim.thermostats[2].setpoint_c == 21.0
            # loopback broker + Modbus write + read back: a few ms, not a cycle
            assert statistics.median(latencies) < 100, latencies


async def test_the_device_goes_offline_and_comes_back_when_the_simulator_restarts(
    tmp_path: Path,
) -> None:
    ns, node = unique("ns"), unique("node")
    device = f"{ns}/thermostat-1"
    async with open_amqtt_broker() as url, open_agent_bus(url) as bus:
        sim = await _start_sim()
        port = sim[1].port
        config = tmp_path / "modbus.json"
        write_config(config, node, "modbus", ["thermostat-1"], namespace=ns, port=port,
                     cycle_ms=50)  # fmt: skip
        async with running(modbus_runner(config, url, node)):
            await bus.wait_state(device, "online")
            await sim[0].aclose()
            await bus.wait_state(device, "offline")
            sim = await _start_sim(port)
            try:
                await bus.wait_state(device, "online")
                await bus.publish(
                    f"$hw/events/device/{device}/twin/update/delta",
                    delta("target-temperature", "25"),
                )
                await bus.wait_twin_update(device, "target-temperature", "25")
            finally:
                await sim[0].aclose()


async def _start_sim(port: int = 0) -> tuple[contextlib.AsyncExitStack, ThermostatSimulator]:
    stack = contextlib.AsyncExitStack()
    sim = await stack.enter_async_context(open_thermostat_simulator(port=port, units=(1,)))
    return stack, sim


async def test_membership_updated_reloads_the_file_adding_and_dropping_devices(
    broker_url: str, tmp_path: Path
) -> None:
    ns, node = unique("ns"), unique("node")
    async with open_thermostat_simulator(units=(1, 2), seed=1) as sim:
        config = tmp_path / "modbus.json"
        write_config(config, node, "modbus", ["thermostat-1"], namespace=ns, port=sim.port,
                     cycle_ms=SLOW_MS)  # fmt: skip
        runner = modbus_runner(config, broker_url, node)
        async with open_agent_bus(broker_url) as bus, running(runner):
            await bus.wait_state(f"{ns}/thermostat-1", "online")
            write_config(config, node, "modbus", ["thermostat-2"], namespace=ns, port=sim.port,
                         cycle_ms=SLOW_MS)  # fmt: skip
            await bus.publish(
                f"$hw/events/node/{node}/membership/updated",
                {"event_id": "m1", "timestamp": 1, "added_devices": [], "removed_devices": []},
            )
            await answer_twin_get(bus, f"{ns}/thermostat-2", {"target-temperature": "24"})
            await bus.wait_twin_update(f"{ns}/thermostat-2", "target-temperature", "24")
            assert sim.thermostats[2].setpoint_c == 24.0
            assert list(runner.workers()) == [f"{ns}/thermostat-2"]
            # a delta for the dropped device is no longer this mapper's business
            await bus.publish(
                f"$hw/events/device/{ns}/thermostat-1/twin/update/delta",
                delta("target-temperature", "30"),
            )
            # membership of another node is not ours either; a broken file keeps the old one
            config.write_text("{broken")
            await bus.publish(f"$hw/events/node/{node}/membership/updated", b"{}")
            await bus.publish(
                f"$hw/events/device/{ns}/thermostat-2/twin/update/delta",
                delta("target-temperature", "25"),
            )
            await bus.wait_twin_update(f"{ns}/thermostat-2", "target-temperature", "25")
            assert sim.thermostats[1].setpoint_c == 21.0
            assert runner.reloads == 1


async def test_bad_deltas_are_logged_and_the_mapper_goes_on(
    broker_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ns, node = unique("ns"), unique("node")
    device = f"{ns}/thermostat-1"
    topic = f"$hw/events/device/{device}/twin/update/delta"
    async with open_thermostat_simulator(units=(1,), seed=1) as sim:
        config = tmp_path / "modbus.json"
        write_config(config, node, "modbus", ["thermostat-1"], namespace=ns, port=sim.port,
                     cycle_ms=SLOW_MS)  # fmt: skip
        runner = modbus_runner(config, broker_url, node)
        async with open_agent_bus(broker_url) as bus, running(runner):
            await bus.wait_state(device, "online")
            await bus.publish(topic, b"\xff not json")
            await bus.publish(topic, b"[1, 2]")
            await bus.publish(topic, {"event_id": "x", "delta": {"bad key!": "1"}})
            await bus.publish(topic, {"event_id": "x", "delta": {"target-temperature": 21}})
            await bus.publish(topic, delta("target-temperature", "abc"))  # refused by the driver
            await bus.publish(topic, delta("target-temperature", "90"))  # refused by the device
            await bus.publish(topic, delta("temperature", "30"))  # ReadOnly: ignored
            await bus.publish(topic, delta("target-temperature", "23"))
            await bus.wait_twin_update(device, "target-temperature", "23")
            assert sim.thermostats[1].setpoint_c == 23.0
            assert runner.bad_messages == 4
            assert "not written" in caplog.text and "illegal data value" in caplog.text
            # a refused value is not retried on every repeat of the same delta
            writes = runner.workers()[device].writes
            await bus.publish(topic, delta("target-temperature", "90"))
            await bus.publish(topic, delta("target-temperature", "23.5"))
            await bus.wait_twin_update(device, "target-temperature", "23.5")
            assert runner.workers()[device].writes == writes + 1


async def test_a_virtual_room_reports_readings_and_switches_its_lights(tmp_path: Path) -> None:
    ns, node = unique("ns"), unique("node")
    device = f"{ns}/occupancy-1"
    config = tmp_path / "virtual.json"
    write_config(config, node, "virtual", ["occupancy-1"], namespace=ns, cycle_ms=SLOW_MS)
    async with open_amqtt_broker() as url, open_agent_bus(url) as bus:
        runner = virtual_runner(config, url, node, SystemClock(), seed=7)
        async with running(runner):
            await bus.wait_state(device, "online")
            co2 = await bus.wait_twin_update(device, "co2")
            assert 380 <= float(co2.json()["twin"]["co2"]["actual"]["value"]) <= 5000
            occupants = await bus.wait_twin_update(device, "occupants")
            assert occupants.json()["twin"]["occupants"]["metadata"] == {"type": "int"}
            await bus.wait_twin_update(device, "lights", "false")
            await answer_twin_get(bus, device, {"lights": "true"}, "boolean")
            await bus.wait_twin_update(device, "lights", "true")
        # stopped: the mapper says its devices are offline (nobody serves them now)
        await bus.wait_state(device, "offline")


async def test_a_config_for_another_node_or_protocol_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "modbus.json"
    write_config(config, "node-b", "modbus", ["thermostat-1"], namespace="default")
    clock = SystemClock()
    factory = driver_factory("modbus", clock=clock)
    runner = MapperRunner(config_path=config, mqtt_url="mqtt://127.0.0.1:1", node="node-a",
                          factory=factory, protocol="modbus")  # fmt: skip
    with pytest.raises(Exception, match="the file is for node 'node-b'"):
        await runner.run()
    runner = MapperRunner(config_path=config, mqtt_url="mqtt://127.0.0.1:1", node="node-b",
                          factory=factory, protocol="virtual")  # fmt: skip
    with pytest.raises(Exception, match="the file is for protocol 'modbus'"):
        await runner.run()


def occupancy_config(tmp_path: Path, node: str, ns: str, **cycles: dict[str, Any]) -> Path:
    """The virtual occupancy-2 device's config, each named property updated as given."""
    config = tmp_path / "virtual.json"
    write_config(config, node, "virtual", ["occupancy-2"], namespace=ns)
    doc = json.loads(config.read_text())
    for prop in doc["devices"][0]["device"]["spec"]["properties"]:
        prop.update(cycles.get(prop["name"], cycles.get("*", {})))
    config.write_text(json.dumps(doc))
    return config


def virtual_runner(
    config: Path, url: str, node: str, clock: ManualClock | SystemClock, seed: int = 3
) -> MapperRunner:
    return MapperRunner(
        config_path=config,
        mqtt_url=url,
        node=node,
        factory=driver_factory("virtual", clock=clock, seed=seed),
        protocol="virtual",
        clock=clock,
        settings=FAST,
    )


@contextlib.asynccontextmanager
async def occupancy_runner(
    tmp_path: Path, clock: ManualClock, **cycles: dict[str, Any]
) -> AsyncIterator[tuple[MapperRunner, AgentBus, str]]:
    """A virtual mapper serving one occupancy sensor, started and asleep in its four collect
    loops (one per property): ``(runner, the agent's bus, the device id)``."""
    ns, node = unique("ns"), unique("node")
    device = f"{ns}/occupancy-2"
    config = occupancy_config(tmp_path, node, ns, **cycles)
    async with open_amqtt_broker() as url, open_agent_bus(url) as bus:
        runner = virtual_runner(config, url, node, clock)
        async with running(runner):
            await bus.wait_for(lambda s: s.topic.endswith(f"{device}/twin/get"), "twin/get")
            await clock.wait_sleepers(4)
            yield runner, bus, device


async def test_readings_follow_collect_and_report_cycles_on_an_injected_clock(
    tmp_path: Path,
) -> None:
    clock = ManualClock(time=START_MS / 1000)
    cycles: dict[str, dict[str, Any]] = {
        "co2": {"collectCycle": 1000, "reportCycle": 3000},
        "occupants": {"collectCycle": 2000},  # reportCycle follows: 2000
        "occupied": {"collectCycle": 1000, "reportToCloud": False},
        "lights": {"collectCycle": 5000},
    }
    async with occupancy_runner(tmp_path, clock, **cycles) as (runner, bus, device):
        for _ in range(12):
            clock.advance(1.0)
            await clock.wait_sleepers(4)
        worker = runner.workers()[device]
        assert worker.reads == 13 + 7 + 13 + 3  # co2, occupants, occupied, lights

        def reported_at(seen: Seen, prop: str) -> int | None:
            if not seen.topic.endswith(f"{device}/twin/update"):
                return None
            twin = seen.json()["twin"].get(prop)
            if twin is None:
                return None
            return (twin["actual"]["metadata"]["timestamp"] - START_MS) // 1000

        for prop, last in (("co2", 12), ("occupants", 12), ("lights", 10)):
            await bus.wait_for(lambda s, p=prop, t=last: reported_at(s, p) == t, prop)
        # a reading taken before the bus was up is sent once it is: nothing is missing
        times = {
            prop: {t for s in bus.history if (t := reported_at(s, prop)) is not None}
            for prop in ("co2", "occupants", "lights", "occupied")
        }
        assert times == {
            "co2": {0, 3, 6, 9, 12},
            "occupants": {0, 2, 4, 6, 8, 10, 12},
            "lights": {0, 5, 10},
            "occupied": set(),  # reportToCloud: false
        }


class RecordingClock(ManualClock):
    """A manual clock that records how long each sleep asked for."""

    def __init__(self, time: float) -> None:
        super().__init__(time=time)
        self.asked: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        await super().sleep(seconds)


async def test_a_short_report_cycle_does_not_wake_the_mapper_between_collects(
    tmp_path: Path,
) -> None:
    clock = RecordingClock(time=START_MS / 1000)
    cycles = {"*": {"collectCycle": 10_000, "reportCycle": 1}}
    async with occupancy_runner(tmp_path, clock, **cycles) as (runner, bus, device):
        # each property collected, reported, then asleep
        clock.asked.clear()
        clock.advance(10.0)  # the next collect: read, report 1 ms later, sleep again
        await clock.wait_sleepers(4)
        clock.advance(0.001)
        await clock.wait_sleepers(4)
        assert runner.workers()[device].reads == 8
        await bus.wait_for(  # the second round's readings went out
            lambda s: (
                s.topic.endswith(f"{device}/twin/update")
                and s.json()["twin"]
                .get("co2", {})
                .get("actual", {})
                .get("metadata", {})
                .get("timestamp")
                == START_MS + 10_000
            ),
            "co2 read at 10 s",
        )
        # asleep until the next collect, not woken every millisecond to find nothing new
        assert [round(s, 6) for s in clock.asked] == [10.0] * 4
