"""The mapper config file and the drivers' configData: typed values, errors naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeweave.aio.clock import ManualClock
from edgeweave.errors import ConfigError
from edgeweave.mappers.config import DeviceConfig, load_mapper_config, parse_mapper_config
from edgeweave.mappers.modbus.codec import DataType, RegisterKind
from edgeweave.mappers.modbus.driver import modbus_driver
from edgeweave.mappers.virtual import virtual_driver_factory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def building() -> dict[str, dict[str, Any]]:
    with (EXAMPLES / "building-devices.yaml").open() as f:
        return {d["metadata"]["name"]: d for d in yaml.safe_load_all(f)}


def config_doc(protocol: str, *names: str) -> dict[str, Any]:
    docs = building()
    devices = []
    for name in names:
        device = docs[name]
        model = docs[device["spec"]["deviceModelRef"]["name"]]
        devices.append({"device": device, "model": model})
    return {"node": "node-a", "protocol": protocol, "devices": devices}


def one_device(doc: dict[str, Any]) -> DeviceConfig:
    config = parse_mapper_config(doc)
    assert config.problems == ()
    (device,) = config.devices
    return device


def test_the_example_thermostats_parse_into_devices_with_typed_properties() -> None:
    config = parse_mapper_config(config_doc("modbus", "thermostat-1", "thermostat-2"))
    assert config.node == "node-a"
    assert [d.id for d in config.devices] == ["default/thermostat-1", "default/thermostat-2"]
    target = config.devices[0].property("target-temperature")
    assert target is not None
    assert (target.model_type, target.twin_type, target.read_write) == ("FLOAT", "float", True)
    assert (target.collect_cycle_ms, target.report_cycle_ms) == (2000, 2000)
    heating = config.devices[0].property("heating")
    assert heating is not None and not heating.read_write and heating.twin_type == "boolean"


def test_cycles_default_to_one_second_and_report_follows_collect() -> None:
    device = one_device(config_doc("virtual", "occupancy-2"))
    for prop in device.properties:
        assert (prop.collect_cycle_ms, prop.report_cycle_ms, prop.report_to_cloud) == (
            1000,
            1000,
            True,
        )


def test_a_bad_device_is_left_out_with_its_field_named_and_the_others_kept() -> None:
    doc = config_doc("modbus", "thermostat-1", "thermostat-2")
    doc["devices"][0]["device"]["spec"]["properties"][1]["collectCycle"] = 1.5
    config = parse_mapper_config(doc, source="modbus.json")
    assert [d.name for d in config.devices] == ["thermostat-2"]
    assert config.problems == (
        "modbus.json: devices[0].device.spec.properties[1].collectCycle: must be a positive "
        "integer number of milliseconds (at most 604800000), got 1.5",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e: e["device"]["spec"]["protocol"].update(protocolName="virtual"),
            "devices[0].device.spec.protocol.protocolName: 'virtual', but this is the 'modbus'",
        ),
        (
            lambda e: e["device"]["spec"]["properties"][0].update(name="humidity"),
            "devices[0].device.spec.properties[0].name: 'humidity' is not a property of "
            "DeviceModel 'thermostat-model'",
        ),
        (
            lambda e: e["device"]["spec"]["properties"][0].update(reportToCloud="yes"),
            "devices[0].device.spec.properties[0].reportToCloud: must be true or false",
        ),
        (
            lambda e: e["device"]["metadata"].pop("name"),
            "devices[0].device.metadata.name: must be a non-empty string",
        ),
        (
            lambda e: e["model"]["spec"]["properties"][0].update(type="DECIMAL"),
            "devices[0].model.spec.properties[0].type: 'DECIMAL' in DeviceModel "
            "'thermostat-model' is not one of INT",
        ),
    ],
)
def test_device_problems_name_the_field(change: Any, message: str) -> None:
    doc = config_doc("modbus", "thermostat-1")
    change(doc["devices"][0])
    config = parse_mapper_config(doc)
    assert config.devices == ()
    assert len(config.problems) == 1
    assert message in config.problems[0]


def test_an_unusable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the mapper config"):
        load_mapper_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad.json: not valid JSON"):
        load_mapper_config(bad)
    bad.write_text(json.dumps({"protocol": "modbus", "devices": []}))
    with pytest.raises(ConfigError, match="node must be a non-empty string"):
        load_mapper_config(bad)


def test_modbus_visitors_parse_into_registers_and_layouts() -> None:
    driver = modbus_driver(one_device(config_doc("modbus", "thermostat-2")))
    assert driver.connection.address == "127.0.0.1:5020"
    assert (driver.connection.unit, driver.connection.timeout_s) == (2, 1.0)
    target = driver.visitors["target-temperature"]
    assert (target.register, target.offset, target.count) == (RegisterKind.HOLDING, 0, 1)
    assert target.layout is not None and target.layout.scale == 0.1
    temperature = driver.visitors["temperature"]
    assert temperature.layout is not None and temperature.layout.data_type is DataType.FLOAT32
    assert driver.visitors["heating"].layout is None


def test_modbus_accepts_numbers_as_strings_and_keys_in_any_case() -> None:
    doc = config_doc("modbus", "thermostat-1")
    device = doc["devices"][0]["device"]
    device["spec"]["protocol"]["configData"] = {"ip": "10.0.0.5", "port": "502", "slaveId": 3}
    driver = modbus_driver(one_device(doc))
    assert (driver.connection.port, driver.connection.unit) == (502, 3)


VISITOR = "devices[0].device.spec.properties[0].visitors.configData"


@pytest.mark.parametrize(
    ("config_data", "message"),
    [
        (
            {"register": "Holding", "offset": 0},
            f"{VISITOR}.register: 'Holding' is not one of CoilRegister, DiscreteInputRegister, "
            "HoldingRegister, InputRegister",
        ),
        (
            {"register": "HoldingRegister", "offset": -1},
            f"{VISITOR}.offset: must be an integer from 0 to 65535, got -1",
        ),
        ({"register": "HoldingRegister"}, f"{VISITOR}.offset: is missing"),
        (
            {"register": "InputRegister", "offset": 0},
            f"{VISITOR}.register: property 'target-temperature' is ReadWrite but a "
            "InputRegister cannot be written",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "dataType": "int24"},
            f"{VISITOR}.dataType: 'int24' is not one of int16, uint16",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "dataType": "float32", "limit": 1},
            f"{VISITOR}.limit: 1 registers, but dataType float32 takes 2",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "scale": 0},
            f"{VISITOR}.scale: must not be 0",
        ),
        (
            {"register": "HoldingRegister", "offset": 0, "isSwap": "maybe"},
            f"{VISITOR}.isSwap: must be true or false, got 'maybe'",
        ),
        ({}, f"{VISITOR}.register: is missing"),
    ],
)
def test_bad_modbus_visitors_name_the_device_and_field(
    config_data: dict[str, Any], message: str
) -> None:
    doc = config_doc("modbus", "thermostat-1")
    doc["devices"][0]["device"]["spec"]["properties"][0]["visitors"]["configData"] = config_data
    with pytest.raises(ConfigError) as info:
        modbus_driver(one_device(doc))
    assert info.value.message.startswith("device default/thermostat-1: ")
    assert message in info.value.message


@pytest.mark.parametrize(
    ("config_data", "message"),
    [
        ({"port": 502}, "spec.protocol.configData.ip: is missing"),
        ({"ip": "h", "port": 70000}, "configData.port: must be an integer from 1 to 65535"),
        ({"ip": "h", "slaveID": 300}, "configData.slaveID: must be an integer from 0 to 255"),
    ],
)
def test_bad_modbus_connections_name_the_field(config_data: dict[str, Any], message: str) -> None:
    doc = config_doc("modbus", "thermostat-1")
    doc["devices"][0]["device"]["spec"]["protocol"]["configData"] = config_data
    with pytest.raises(ConfigError, match=message):
        modbus_driver(one_device(doc))


def test_bad_virtual_visitors_name_the_field() -> None:
    factory = virtual_driver_factory(ManualClock(), seed=1)
    doc = config_doc("virtual", "occupancy-1")
    props = doc["devices"][0]["device"]["spec"]["properties"]
    broken = copy.deepcopy(doc)
    broken["devices"][0]["device"]["spec"]["properties"][2]["visitors"]["configData"] = {
        "kind": "sensor"
    }
    with pytest.raises(
        ConfigError, match=r"properties\[2\].visitors.configData.initial: is missing"
    ):
        factory(one_device(broken))
    props[0]["visitors"]["configData"] = {"kind": "thermometer"}
    with pytest.raises(
        ConfigError, match="'thermometer' is not one of sensor, occupancy, actuator"
    ):
        factory(one_device(doc))
