"""`edgeweave mapper simulate modbus` and `edgeweave mapper run` as real processes.

The test plays the agent: it runs the broker (embedded amqtt, in the test's loop, so the
processes are driven with asyncio), writes the config file, answers ``twin/get``, sends a
delta, and checks the simulator's register over Modbus. Both processes stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeweave.mappers.modbus.client import ModbusTcpConnection
from edgeweave.mappers.modbus.codec import RegisterKind

pytestmark = pytest.mark.e2e
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from mapper_rig import (  # noqa: E402 - the shared rig lives beside the integration tests
    open_agent_bus,
    open_amqtt_broker,
    write_config,
)

WAIT_S = 15.0


@contextlib.asynccontextmanager
async def edgeweave(*argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m edgeweave ARGV``; SIGTERM and wait on the way out (SIGKILL if stuck)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        "-m",
        "edgeweave",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), WAIT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


async def test_the_mapper_process_writes_a_delta_to_the_simulated_thermostat(
    tmp_path: Path,
) -> None:
    ns, node = f"ns-{uuid.uuid4().hex[:6]}", "node-a"
    device = f"{ns}/thermostat-1"
    async with (
        open_amqtt_broker() as url,
        open_agent_bus(url) as bus,
        edgeweave(
            "mapper", "simulate", "modbus", "--port", "0", "--units", "1,2", "--speed", "10"
        ) as sim,
    ):
        assert sim.stdout is not None
        ready = json.loads(await asyncio.wait_for(sim.stdout.readline(), WAIT_S))
        assert ready["units"] == [1, 2] and ready["port"] > 0
        config = tmp_path / "modbus.json"
        write_config(config, node, "modbus", ["thermostat-1"], namespace=ns,
                     port=ready["port"], cycle_ms=60_000)  # fmt: skip
        async with edgeweave(
            "mapper", "run", "modbus", "--mqtt", url, "--node", node, "--config", str(config)
        ) as mapper:
            await bus.wait_state(device, "online")
            await bus.wait_for(lambda s: s.topic.endswith(f"{device}/twin/get"), "twin/get")
            await bus.publish(
                f"$hw/events/device/{device}/twin/update/delta",
                {"event_id": "e1", "timestamp": int(time.time() * 1000), "twin": {},
                 "delta": {"target-temperature": "24.5"}},
            )  # fmt: skip
            await bus.wait_twin_update(device, "target-temperature", "24.5")
            modbus = ModbusTcpConnection("127.0.0.1", ready["port"], 1, timeout_s=2)
            await modbus.connect()
            try:
                assert await modbus.read_registers(RegisterKind.HOLDING, 0, 1) == [245]
            finally:
                modbus.close()
            code, stderr = await stop(mapper)
            assert code == 0, stderr
            assert "device " + device + " is online" in stderr
        code, stderr = await stop(sim)
        assert code == 0, stderr


async def test_a_mapper_with_an_unusable_config_exits_1_with_one_error_line(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope.json"
    async with edgeweave(
        "mapper", "run", "virtual", "--node", "n", "--config", str(missing)
    ) as proc:
        _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode == 1
    assert stderr.decode().strip() == f"error: cannot read the mapper config {missing}: " + (
        "No such file or directory"
    )


def sysfs_config(path: Path, root: Path, ns: str) -> None:
    model = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "board-model", "namespace": ns},
        "spec": {
            "protocol": "sysfs",
            "properties": [
                {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
                {"name": "led", "type": "INT", "accessMode": "ReadWrite"},
            ],
        },
    }
    device = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "board-1", "namespace": ns},
        "spec": {
            "deviceModelRef": {"name": "board-model"},
            "nodeName": "node-a",
            "protocol": {"protocolName": "sysfs", "configData": {"root": str(root)}},
            "properties": [
                {"name": "temperature", "collectCycle": 60_000,
                 "visitors": {"configData": {"file": "hwmon/temp1_input", "scale": 0.001}}},
                {"name": "led", "collectCycle": 60_000,
                 "visitors": {"configData": {"file": "leds/led0/brightness"}}},
            ],
        },
    }  # fmt: skip
    doc = {"node": "node-a", "protocol": "sysfs", "devices": [{"device": device, "model": model}]}
    path.write_text(json.dumps(doc))


async def test_the_sdk_example_mapper_from_the_docs_runs_as_written(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "mappers" / "sysfs_mapper.py"
    root = tmp_path / "sys"
    (root / "hwmon").mkdir(parents=True)
    (root / "leds" / "led0").mkdir(parents=True)
    (root / "hwmon" / "temp1_input").write_text("23500\n")
    led = root / "leds" / "led0" / "brightness"
    led.write_text("0\n")
    ns = f"ns-{uuid.uuid4().hex[:6]}"
    device = f"{ns}/board-1"
    config = tmp_path / "sysfs.json"
    sysfs_config(config, root, ns)
    async with open_amqtt_broker() as url, open_agent_bus(url) as bus:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-W", "error", str(example),
            "--mqtt", url, "--node", "node-a", "--config", str(config),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await bus.wait_twin_update(device, "temperature", "23.5")
            await bus.wait_twin_update(device, "led", "0")
            await bus.publish(
                f"$hw/events/device/{device}/twin/update/delta",
                {"event_id": "e1", "timestamp": 1, "twin": {}, "delta": {"led": "255"}},
            )
            await bus.wait_twin_update(device, "led", "255")
            assert led.read_text() == "255\n"
        finally:
            code, stderr = await stop(proc)
        assert code == 0, stderr
