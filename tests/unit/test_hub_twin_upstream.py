"""``device.twin`` upstream entries: how the hub's translator reads, checks and refuses them.

Pure: a real :class:`DesiredIndex` fed with objects, no store, no sockets.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeweave.cloud.hub.index import DesiredIndex
from edgeweave.cloud.hub.twinreport import MAX_ITEMS, parse_twin_report
from edgeweave.cloud.hub.upstream import translate
from edgeweave.errors import BadRequest
from edgeweave.protocol.messages import UpstreamEntry
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.report import LocalDesired

DEVICE = ResourceRef("Device", "default", "thermostat-1")


def report(**changes: Any) -> dict[str, Any]:
    """The payload of the contract (docs/devices.md), with ``changes`` merged in."""
    payload: dict[str, Any] = {
        "device": {"namespace": "default", "name": "thermostat-1"},
        "state": "online",
        "lastOnlineTime": "2026-11-26T09:00:00Z",
        "twins": [
            {
                "propertyName": "temperature",
                "reported": {
                    "value": "21.5",
                    "metadata": {"timestamp": "1700000000500", "type": "float"},
                },
                "observedDesired": {
                    "value": "22",
                    "metadata": {"timestamp": "1700000000000", "type": "float"},
                },
            }
        ],
        "samples": [{"property": "temperature", "value": "21.5", "timestamp": 1700000000500}],
        "localDesired": [
            {"property": "target", "value": "23", "base": "22", "timestamp": 1700000000000}
        ],
    }
    payload.update(changes)
    return payload


def index_with(*devices: tuple[str, str]) -> DesiredIndex:
    """An index holding Devices ``(name, node)`` in namespace default."""
    index = DesiredIndex()
    for rv, (name, node) in enumerate(devices, start=1):
        obj = {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "Device",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)},
            "spec": {"deviceModelRef": {"name": "m"}, "nodeName": node},
        }
        index.apply("ADDED", obj, rv)
    return index


def entries(*payloads: Any, topic: str = "device.twin") -> list[UpstreamEntry]:
    return [UpstreamEntry(seq=i, topic=topic, payload=p) for i, p in enumerate(payloads, 1)]


def test_a_report_becomes_a_status_write_history_rows_and_local_desired() -> None:
    index = index_with(("thermostat-1", "edge-1"))
    out = translate("edge-1", entries(report()), 0, index)
    assert out.refused == [] and out.last_seq == 1
    assert out.status_writes == [
        (
            "Device",
            "default",
            "thermostat-1",
            {
                "twins": report()["twins"],
                "state": "online",
                "lastOnlineTime": "2026-11-26T09:00:00Z",
            },
        )
    ]
    assert out.samples == [("default", "thermostat-1", "temperature", 1700000000500, "21.5")]
    assert out.local_desired == [(DEVICE, LocalDesired("target", "23", "22", 1700000000000))]
    assert out.events == []


def test_absent_optional_fields_are_left_out_of_the_status() -> None:
    index = index_with(("thermostat-1", "edge-1"))
    payload = report(twins=[{"propertyName": "temperature"}])
    for key in ("state", "lastOnlineTime", "samples", "localDesired"):
        del payload[key]
    out = translate("edge-1", entries(payload), 0, index)
    assert out.status_writes == [
        ("Device", "default", "thermostat-1", {"twins": [{"propertyName": "temperature"}]})
    ]
    assert out.samples == [] and out.local_desired == []


def test_the_newest_report_per_device_wins_but_every_sample_is_kept() -> None:
    index = index_with(("thermostat-1", "edge-1"), ("thermostat-2", "edge-1"))
    older = report(state="offline", samples=[{"property": "t", "value": "1", "timestamp": 1}])
    other = report(device={"namespace": "default", "name": "thermostat-2"})
    newer = report(state="online", samples=[{"property": "t", "value": "2", "timestamp": 2}])
    newer["localDesired"] = [
        {"property": "target", "value": "24", "base": "22", "timestamp": 1700000001000}
    ]
    out = translate("edge-1", entries(older, other, newer), 0, index)
    states = {(w[2], w[3].get("state")) for w in out.status_writes}
    assert states == {("thermostat-1", "online"), ("thermostat-2", "online")}
    assert len(out.status_writes) == 2
    assert [s[3] for s in out.samples if s[1] == "thermostat-1"] == [1, 2]
    ours = [item for ref, item in out.local_desired if ref == DEVICE]
    assert ours == [LocalDesired("target", "24", "22", 1700000001000)]  # newest per property


def test_reports_about_devices_of_other_nodes_are_refused_and_reported() -> None:
    index = index_with(("thermostat-1", "edge-2"))
    out = translate("edge-1", entries(report()), 0, index)
    assert out.status_writes == [] and out.samples == [] and out.local_desired == []
    assert len(out.refused) == 1 and "thermostat-1" in out.refused[0]
    (event,) = out.events
    assert event[2:5] == ("Node", "", "edge-1") and event[5:7] == ("Warning", "UpstreamRefused")
    assert out.last_seq == 1  # consumed: a replay does not loop


def test_entries_already_committed_are_skipped() -> None:
    index = index_with(("thermostat-1", "edge-1"))
    out = translate("edge-1", entries(report(), report(state="unknown")), 1, index)
    assert [w[3]["state"] for w in out.status_writes] == ["unknown"]


def _long(n: int) -> str:
    return "x" * n


MALFORMED: list[tuple[str, Any]] = [
    ("not an object", ["twins"]),
    ("no device", {k: v for k, v in report().items() if k != "device"}),
    ("device name not a string", report(device={"namespace": "default", "name": 7})),
    ("empty namespace", report(device={"namespace": "", "name": "thermostat-1"})),
    ("no twins", {k: v for k, v in report().items() if k != "twins"}),
    ("twins not a list", report(twins={"temperature": {}})),
    ("twin not an object", report(twins=["temperature"])),
    ("bad property name", report(twins=[{"propertyName": "temp erature"}])),
    ("long property name", report(twins=[{"propertyName": _long(129)}])),
    ("duplicate property", report(twins=[{"propertyName": "a"}, {"propertyName": "a"}])),
    (
        "reported value not a string",
        report(twins=[{"propertyName": "a", "reported": {"value": 21.5}}]),
    ),
    ("long value", report(twins=[{"propertyName": "a", "reported": {"value": _long(513)}}])),
    (
        "metadata not strings",
        report(
            twins=[{"propertyName": "a", "reported": {"value": "1", "metadata": {"timestamp": 1}}}]
        ),
    ),
    ("state not a string", report(state=1)),
    ("too many twins", report(twins=[{"propertyName": f"p{i}"} for i in range(MAX_ITEMS + 1)])),
    (
        "too many samples",
        report(samples=[{"property": "a", "value": "1", "timestamp": 1}] * (MAX_ITEMS + 1)),
    ),
    (
        "sample timestamp a string",
        report(samples=[{"property": "a", "value": "1", "timestamp": "1"}]),
    ),
    (
        "sample timestamp a bool",
        report(samples=[{"property": "a", "value": "1", "timestamp": True}]),
    ),
    (
        "sample timestamp negative",
        report(samples=[{"property": "a", "value": "1", "timestamp": -1}]),
    ),
    (
        "sample timestamp a float",
        report(samples=[{"property": "a", "value": "1", "timestamp": 1.5}]),
    ),
    ("sample value missing", report(samples=[{"property": "a", "timestamp": 1}])),
    (
        "local desired base not a string",
        report(localDesired=[{"property": "a", "value": "1", "base": 2, "timestamp": 1}]),
    ),
    ("local desired not a list", report(localDesired={"a": "1"})),
]


@pytest.mark.parametrize(("why", "payload"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_reports_are_refused_with_a_reason(why: str, payload: Any) -> None:
    index = index_with(("thermostat-1", "edge-1"))
    good = report(state="unknown")
    out = translate("edge-1", entries(payload, good), 0, index)
    assert len(out.refused) == 1 and "malformed" in out.refused[0], why
    # the good entry of the same batch still counts
    assert [w[3]["state"] for w in out.status_writes] == ["unknown"]
    assert out.events[-1][6] == "UpstreamRefused"
    assert len(out.events[-1][7]) < 2000  # the reasons are cut, whatever was sent
    with pytest.raises(BadRequest):
        parse_twin_report(payload)


def test_unknown_keys_are_ignored_and_never_stored() -> None:
    index = index_with(("thermostat-1", "edge-1"))
    payload = report(extra={"big": "x"})
    payload["twins"][0]["secret"] = "s"
    payload["twins"][0]["reported"]["junk"] = 1
    out = translate("edge-1", entries(payload), 0, index)
    twin = out.status_writes[0][3]["twins"][0]
    assert "secret" not in twin and "junk" not in twin["reported"]
    assert "extra" not in out.status_writes[0][3]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
KEYS = ("device", "state", "lastOnlineTime", "twins", "samples", "localDesired")


@st.composite
def near_valid_reports(draw: st.DrawFn) -> Any:
    """The contract's payload with some fields replaced by arbitrary JSON, at any depth."""
    payload = copy.deepcopy(report())
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        payload[key] = draw(json_values)
    if draw(st.booleans()):
        twin = payload.get("twins")
        if isinstance(twin, list) and twin and isinstance(twin[0], dict):
            field = draw(st.sampled_from(["propertyName", "reported", "observedDesired"]))
            twin[0][field] = draw(json_values)
    return payload


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(json_values | near_valid_reports(), min_size=1, max_size=4))
def test_translate_never_raises_whatever_a_node_sends(payloads: list[Any]) -> None:
    index = index_with(("thermostat-1", "edge-1"))
    out = translate("edge-1", entries(*payloads), 0, index)
    assert len(out.refused) + len(out.status_writes) <= len(payloads) + 1
    for _, _, _, status in out.status_writes:
        assert isinstance(status["twins"], list)
    for *_, time_ms, value in out.samples:
        assert isinstance(time_ms, int) and isinstance(value, str) and len(value) <= 512
