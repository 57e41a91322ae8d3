"""KubeEdge DeviceModel / Device manifests, and the Device-against-model checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from edgeweave.errors import InvalidObject
from edgeweave.models import registry
from edgeweave.models.devices import parse_property_value, validate_device_against_model

# Written the way KubeEdge's own v1beta1 Modbus samples are: quoted values, free configData.
KUBEEDGE_MANIFESTS = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: temperature-model
  namespace: default
spec:
  properties:
    - name: temperature
      description: temperature in degree celsius
      type: INT
      accessMode: ReadWrite
      maximum: "100"
      minimum: "1"
      unit: "Celsius"
    - name: humidity
      description: relative humidity
      type: FLOAT
      accessMode: ReadOnly
  protocol: modbus
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata:
  name: temperature-instance
  namespace: default
  labels:
    model: temperature-model
spec:
  deviceModelRef:
    name: temperature-model
  nodeName: edge-1
  properties:
    - name: temperature
      collectCycle: 10000
      reportCycle: 10000
      reportToCloud: true
      desired:
        value: "30"
      visitors:
        protocolName: modbus
        configData:
          register: "HoldingRegister"
          offset: 2
          limit: 1
          scale: 1
          isSwap: true
          isRegisterSwap: true
      pushMethod:
        mqtt:
          address: tcp://127.0.0.1:1883
          topic: temperature
          qos: 0
          retained: false
    - name: humidity
      collectCycle: 10000
      reportCycle: 10000
      visitors:
        protocolName: modbus
        configData:
          register: "InputRegister"
          offset: 3
          limit: 1
          scale: 0.1
          isSwap: false
          isRegisterSwap: false
  protocol:
    protocolName: modbus
    configData:
      ip: 172.17.0.3
      port: 1502
      slaveID: 1
status:
  twins:
    - propertyName: temperature
      reported:
        value: "29"
        metadata:
          timestamp: "1700000000000"
          type: int
      observedDesired:
        value: "30"
        metadata:
          timestamp: "1700000000000"
          type: int
  state: online
  lastOnlineTime: "2024-01-01T00:00:00Z"
"""


def manifests() -> tuple[dict[str, Any], dict[str, Any]]:
    model, device = yaml.safe_load_all(KUBEEDGE_MANIFESTS)
    return model, device


def test_kubeedge_modbus_manifests_validate_unchanged() -> None:
    model, device = manifests()
    assert registry.validate(copy.deepcopy(model)) == model
    assert registry.validate(copy.deepcopy(device)) == device
    validate_device_against_model(device, model)


def test_fields_kubeedge_adds_that_edgeweave_does_not_know_are_kept() -> None:
    _, device = manifests()
    device["spec"]["properties"][0]["visitors"]["configData"]["dataType"] = "int16"
    device["spec"]["protocol"]["configData"]["vendorThing"] = {"a": [1, 2]}
    device["spec"]["properties"][0]["futureOption"] = True
    assert registry.validate(copy.deepcopy(device)) == device


def test_older_manifests_with_state_report_under_status_are_accepted() -> None:
    _, device = manifests()
    device["status"]["stateReport"] = {"reportToCloud": True, "reportCycle": 60000}
    device["status"]["reportCycle"] = 60000
    registry.validate(device)


def test_an_unknown_property_type_is_rejected_with_its_path() -> None:
    model, _ = manifests()
    model["spec"]["properties"][1]["type"] = "DECIMAL"
    with pytest.raises(InvalidObject) as info:
        registry.validate(model)
    assert info.value.field == "spec.properties[1].type"
    assert "'INT'" in info.value.message and "DECIMAL" in info.value.message


def test_an_unknown_access_mode_is_rejected() -> None:
    model, _ = manifests()
    model["spec"]["properties"][0]["accessMode"] = "WriteOnly"
    with pytest.raises(InvalidObject) as info:
        registry.validate(model)
    assert info.value.field == "spec.properties[0].accessMode"


def test_report_and_collect_cycles_must_be_integer_milliseconds() -> None:
    _, device = manifests()
    device["spec"]["properties"][0]["reportCycle"] = "10s"
    device["spec"]["properties"][1]["collectCycle"] = -5
    with pytest.raises(InvalidObject) as info:
        registry.validate(device)
    paths = [e.split(":")[0] for e in info.value.errors]
    assert paths == ["spec.properties[0].reportCycle", "spec.properties[1].collectCycle"]


def test_a_bad_modbus_register_names_the_visitor_field() -> None:
    _, device = manifests()
    device["spec"]["properties"][1]["visitors"]["configData"]["register"] = "Holding"
    with pytest.raises(InvalidObject) as info:
        registry.validate(device)
    assert info.value.field == "spec.properties[1].visitors.configData.register"
    assert "HoldingRegister" in info.value.message


def test_modbus_connection_settings_are_checked() -> None:
    _, device = manifests()
    device["spec"]["protocol"]["configData"]["port"] = 70000
    with pytest.raises(InvalidObject) as info:
        registry.validate(device)
    assert info.value.field == "spec.protocol.configData.port"


def test_register_is_not_checked_for_other_protocols() -> None:
    _, device = manifests()
    device["spec"]["protocol"] = {"protocolName": "virtual", "configData": {}}
    for prop in device["spec"]["properties"]:
        prop["visitors"] = {"protocolName": "virtual", "configData": {"register": "anything"}}
    registry.validate(device)


def test_an_unquoted_desired_value_gets_a_hint_to_quote_it() -> None:
    _, device = manifests()
    device["spec"]["properties"][0]["desired"]["value"] = 30
    with pytest.raises(InvalidObject) as info:
        registry.validate(device)
    assert info.value.field == "spec.properties[0].desired.value"
    assert 'quote it in YAML: "30"' in info.value.message


def test_a_device_without_a_model_reference_is_rejected() -> None:
    _, device = manifests()
    del device["spec"]["deviceModelRef"]
    with pytest.raises(InvalidObject) as info:
        registry.validate(device)
    assert info.value.field == "spec.deviceModelRef"


def test_a_desired_value_that_does_not_parse_as_the_model_type_is_rejected() -> None:
    model, device = manifests()
    device["spec"]["properties"][0]["desired"]["value"] = "warm"
    with pytest.raises(InvalidObject) as info:
        validate_device_against_model(device, model)
    assert info.value.field == "spec.properties[0].desired.value"
    assert "INT" in info.value.message and "temperature-model" in info.value.message


def test_device_with_readonly_desired_value_is_rejected() -> None:
    model, device = manifests()
    device["spec"]["properties"][1]["desired"] = {"value": "55.5"}
    with pytest.raises(InvalidObject) as info:
        validate_device_against_model(device, model)
    assert info.value.field == "spec.properties[1].desired"
    assert "ReadOnly" in info.value.message


def test_a_desired_value_outside_the_model_range_is_rejected() -> None:
    model, device = manifests()
    device["spec"]["properties"][0]["desired"]["value"] = "101"
    with pytest.raises(InvalidObject) as info:
        validate_device_against_model(device, model)
    assert "outside" in info.value.message


def test_a_missing_model_gives_an_error_naming_it() -> None:
    _, device = manifests()
    with pytest.raises(InvalidObject) as info:
        validate_device_against_model(device, None)
    assert info.value.field == "spec.deviceModelRef.name"
    assert "'temperature-model'" in info.value.message


def test_a_property_the_model_does_not_define_is_rejected_listing_the_known_ones() -> None:
    model, device = manifests()
    device["spec"]["properties"][0]["name"] = "pressure"
    device["spec"]["methods"] = [{"name": "m", "propertyNames": ["nope"]}]
    with pytest.raises(InvalidObject) as info:
        validate_device_against_model(device, model)
    assert info.value.errors[0].startswith("spec.properties[0].name:")
    assert "humidity, temperature" in info.value.errors[0]
    assert info.value.errors[1].startswith("spec.methods[0].propertyNames[0]:")


def test_the_model_passed_must_be_the_one_the_device_names() -> None:
    model, device = manifests()
    model["metadata"]["name"] = "other-model"
    with pytest.raises(InvalidObject, match="other-model"):
        validate_device_against_model(device, model)


@pytest.mark.parametrize(
    ("prop_type", "text", "expected"),
    [
        ("INT", "-42", -42),
        ("FLOAT", "21.5", 21.5),
        ("DOUBLE", "1e3", 1000.0),
        ("BOOLEAN", "true", True),
        ("BOOLEAN", "0", False),
        ("STRING", "hello", "hello"),
    ],
)
def test_property_values_parse_as_their_type(prop_type: str, text: str, expected: object) -> None:
    assert parse_property_value(prop_type, text) == expected


@pytest.mark.parametrize(
    ("prop_type", "text"), [("INT", "1.5"), ("FLOAT", "nan"), ("BOOLEAN", "yes")]
)
def test_property_values_of_the_wrong_type_are_refused(prop_type: str, text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        parse_property_value(prop_type, text)
