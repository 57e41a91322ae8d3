"""The built-in mappers' config files: one per protocol in use, each device's part encoded
only when that device changed, desired values and versions left out (a twin set rewrites
nothing), and a protocol's file gone with its last device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeweave.edge.devices.info import DeviceInfo, info_of
from edgeweave.edge.devices.mapperapps import MapperApps
from edgeweave.protocol.refs import ResourceRef

MODEL = {"kind": "DeviceModel", "metadata": {"name": "m", "namespace": "default"}, "spec": {}}


def device(name: str, protocol: str, desired: str = "1", rv: str = "1") -> dict[str, Any]:
    return {
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
        "spec": {
            "deviceModelRef": {"name": "m"},
            "protocol": {"protocolName": protocol},
            "properties": [{"name": "level", "desired": {"value": desired}}],
        },
    }


def infos(*devices: dict[str, Any]) -> dict[ResourceRef, DeviceInfo]:
    out = {}
    for d in devices:
        info = info_of(d, MODEL)
        out[info.ref] = info
    return out


def names(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    return [d["device"]["metadata"]["name"] for d in doc["devices"]]


def test_files_per_protocol_and_only_changes_rewrite(tmp_path: Path) -> None:
    apps = MapperApps(tmp_path, "node-a", lambda: "mqtt://127.0.0.1:1884", python="py")
    held = infos(device("b", "virtual"), device("a", "virtual"), device("c", "modbus"))
    assert apps.update(held) is True
    assert names(apps.config_path("virtual")) == ["a", "b"]  # sorted by device
    assert names(apps.config_path("modbus")) == ["c"]
    doc = json.loads(apps.config_path("virtual").read_text())
    assert (doc["node"], doc["protocol"]) == ("node-a", "virtual")
    assert "desired" not in doc["devices"][0]["device"]["spec"]["properties"][0]
    assert [a["metadata"]["name"] for a in apps.apps()] == ["mapper-modbus", "mapper-virtual"]

    twin_set = infos(device("a", "virtual", desired="2", rv="2"))
    held.update(twin_set)
    assert apps.update(held, set(twin_set)) is False  # nothing a mapper reads changed

    moved = infos(device("a", "modbus", rv="3"))
    held.update(moved)
    assert apps.update(held, set(moved)) is True
    assert names(apps.config_path("virtual")) == ["b"]
    assert names(apps.config_path("modbus")) == ["a", "c"]


def test_a_protocol_goes_with_its_last_device_and_others_are_not_served(tmp_path: Path) -> None:
    apps = MapperApps(tmp_path, "node-a", lambda: "mqtt://127.0.0.1:1884", python="py")
    held = infos(device("a", "virtual"), device("x", "opcua"))
    assert apps.update(held) is True
    assert [a["metadata"]["name"] for a in apps.apps()] == ["mapper-virtual"]
    gone = {ref for ref in held if ref.name == "a"}
    del held[next(iter(gone))]
    assert apps.update(held, gone) is True
    assert apps.apps() == []
    assert apps.update(held, gone) is False  # already gone
