"""The cloud's twin helpers (desired values in spec, the twin view) and the ``twin`` command's
pure parts (assignments, durations, tables). No store, no sockets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgeweave.cli.context import UsageError
from edgeweave.cli.twin import format_time_ms, parse_assignments, since_ms, twin_rows
from edgeweave.cloud.twins import desired_problems, desired_values, twin_view, with_desired

MODEL: dict[str, Any] = {
    "kind": "DeviceModel",
    "metadata": {"name": "m", "namespace": "default"},
    "spec": {
        "properties": [
            {"name": "temp", "type": "FLOAT", "accessMode": "ReadOnly"},
            {"name": "target", "type": "INT", "minimum": "5", "maximum": "35"},
            {"name": "on", "type": "BOOLEAN"},
        ]
    },
}
DEVICE: dict[str, Any] = {
    "kind": "Device",
    "metadata": {"name": "d", "namespace": "default", "resourceVersion": "7"},
    "spec": {
        "deviceModelRef": {"name": "m"},
        "nodeName": "edge-1",
        "properties": [
            {"name": "temp"},
            {"name": "target", "desired": {"value": "21", "metadata": {"type": "int"}}},
        ],
    },
    "status": {
        "state": "online",
        "twins": [
            {"propertyName": "temp", "reported": {"value": "20.5", "metadata": {"timestamp": "5"}}},
            {"propertyName": "extra", "reported": {"value": "x"}},
        ],
    },
}


def test_desired_values_and_writing_them_back() -> None:
    before = copy.deepcopy(DEVICE)
    assert desired_values(DEVICE) == {"temp": None, "target": "21"}
    changed = with_desired(DEVICE, {"target": "23", "on": "true", "temp": None, "gone": None})
    assert before == DEVICE  # the argument is left alone
    changed["metadata"]["resourceVersion"] = "8"  # as the API's compare-and-set does
    assert DEVICE["metadata"]["resourceVersion"] == "7"
    props = changed["spec"]["properties"]
    assert props[1] == {"name": "target", "desired": {"value": "23", "metadata": {"type": "int"}}}
    assert props[2] == {"name": "on", "desired": {"value": "true"}}
    assert [p["name"] for p in props] == ["temp", "target", "on"]
    cleared = with_desired(changed, {"target": None})
    assert "desired" not in cleared["spec"]["properties"][1]
    assert desired_values(cleared) == {"temp": None, "target": None, "on": "true"}


def test_desired_problems_name_each_property_the_model_refuses() -> None:
    assert desired_problems(DEVICE, MODEL, {"target": "30", "on": "false", "temp": None}) == []
    problems = desired_problems(
        DEVICE, MODEL, {"temp": "1", "target": "50", "on": "maybe", "hum": "1"}
    )
    assert len(problems) == 4
    assert problems[0].startswith("property 'temp' is ReadOnly")
    assert "'target''s range" in problems[1] and "declares 'on' as BOOLEAN" in problems[2]
    assert "has no property 'hum'" in problems[3]
    assert "spec.properties" not in " ".join(problems)  # the probe's path is not the user's
    (missing,) = desired_problems(DEVICE, None, {"target": "30"})
    assert "DeviceModel 'm' does not exist" in missing


def test_the_twin_view() -> None:
    view = twin_view(DEVICE, MODEL)
    assert view["device"] == {
        "namespace": "default",
        "name": "d",
        "model": "m",
        "nodeName": "edge-1",
        "resourceVersion": "7",
    }
    assert [p["name"] for p in view["properties"]] == ["temp", "target", "on", "extra"]
    temp, target, on, extra = view["properties"]
    assert temp["reported"] == "20.5" and temp["reportedAt"] == 5 and temp["type"] == "FLOAT"
    assert target["desired"] == "21" and target["accessMode"] == "ReadWrite"
    assert on["reported"] is None and on["reportedAt"] is None
    assert extra["type"] is None and extra["accessMode"] is None and extra["reported"] == "x"
    assert view["state"] == "online" and view["lastOnlineTime"] is None
    bare = twin_view({"kind": "Device", "metadata": {"name": "x"}}, None)
    assert bare["properties"] == [] and bare["device"]["namespace"] == "default"


def test_assignments() -> None:
    assert parse_assignments(["a=1", "b=", "c=x=y"]) == {"a": "1", "b": None, "c": "x=y"}
    for bad in (["a"], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(UsageError):
            parse_assignments(bad)


def test_durations_and_times() -> None:
    assert since_ms(None) is None
    assert since_ms("1h", now_s=10_000.0) == 6_400_000
    assert since_ms("90", now_s=100.0) == 10_000
    with pytest.raises(UsageError, match="--since"):
        since_ms("soon")
    assert format_time_ms(1_700_000_000_500) == "2023-11-14T22:13:20.500Z"
    assert format_time_ms(None) == "<none>"


def test_the_twin_table() -> None:
    rows = twin_rows(twin_view(DEVICE, MODEL), now_s=125.0)
    assert rows[0] == ["PROPERTY", "TYPE", "DESIRED", "REPORTED", "OBSERVED-DESIRED", "AGE"]
    assert rows[1] == ["temp", "FLOAT", "<none>", "20.5", "<none>", "2m"]
    assert rows[2] == ["target", "INT", "21", "<none>", "<none>", "<none>"]
