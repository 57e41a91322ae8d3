"""The twin's operations: validation by type, versions, result/document/delta, dispatch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin import payloads
from edgeweave.twin.dispatch import (
    handle_device_message,
    handle_membership_get,
    membership_device,
    publications,
)
from edgeweave.twin.errors import TwinError
from edgeweave.twin.manifests import twin_from_device
from edgeweave.twin.messages import (
    MsgTwin,
    StateUpdate,
    TwinGet,
    TwinUpdate,
    TwinUpdateResult,
    TwinValue,
    Versions,
)
from edgeweave.twin.state import (
    DeviceTwin,
    PropertyTwin,
    apply_cloud_desired,
    apply_state,
    apply_update,
    define_property,
    get_result,
    last_online_time,
)
from edgeweave.twin.topics import DeviceAction, DeviceTopic, NodeAction, NodeTopic

NOW = 1_700_000_000_000
THERMO = ResourceRef("Device", "default", "thermo-1")


def thermostat() -> DeviceTwin:
    twin = DeviceTwin(THERMO)
    twin = define_property(twin, "target", "int")
    twin = define_property(twin, "temperature", "float", read_only=True)
    twin = define_property(twin, "power", "boolean")
    return apply_cloud_desired(twin, {"target": "30"}, event_id="seed", now_ms=NOW).twin


def report(**actual: str) -> TwinUpdate:
    return TwinUpdate("ev-1", None, {k: MsgTwin(actual=TwinValue(v)) for k, v in actual.items()})


# ---------------------------------------------------------------- mapper updates


def test_a_reported_value_sets_actual_bumps_the_edge_version_and_answers_with_the_result() -> None:
    before = thermostat()
    change = apply_update(before, report(temperature="21.5"), NOW + 5)
    prop = change.twin.properties["temperature"]
    assert prop.actual == TwinValue("21.5", NOW + 5)
    assert prop.actual_version == Versions(cloud=0, edge=1)
    assert prop.expected_version == Versions()
    assert isinstance(change.result, TwinUpdateResult)
    assert change.result.event_id == "ev-1"
    assert change.result.twin["temperature"].actual == TwinValue("21.5", NOW + 5)
    assert before.properties["temperature"].actual is None  # the old twin is untouched


def test_each_report_bumps_the_edge_version_again() -> None:
    twin = thermostat()
    for _ in range(3):
        twin = apply_update(twin, report(temperature="20"), NOW).twin
    assert twin.properties["temperature"].actual_version == Versions(0, 3)


def test_the_senders_timestamp_is_kept_when_given() -> None:
    update = TwinUpdate("e", 42, {"temperature": MsgTwin(actual=TwinValue("20", 40))})
    assert apply_update(thermostat(), update, NOW).twin.properties[
        "temperature"
    ].actual == TwinValue("20", 40)
    update = TwinUpdate("e", 42, {"temperature": MsgTwin(actual=TwinValue("20"))})
    assert apply_update(thermostat(), update, NOW).twin.properties[
        "temperature"
    ].actual == TwinValue("20", 42)


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("target", "warm"),
        ("target", "2.5"),
        ("temperature", "hot"),
        ("power", "yes"),
        ("target", ""),
        ("target", "99999999999999999999999"),
    ],
)
def test_a_value_that_does_not_parse_as_the_property_type_is_a_400(prop: str, value: str) -> None:
    with pytest.raises(TwinError) as caught:
        apply_update(thermostat(), report(**{prop: value}), NOW)
    assert caught.value.code == 400
    assert prop in caught.value.message


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("target", "-3"),
        ("temperature", "1e3"),
        ("temperature", "21"),
        ("power", "true"),
        ("power", "0"),
    ],
)
def test_values_that_parse_as_the_property_type_are_accepted(prop: str, value: str) -> None:
    change = apply_update(thermostat(), report(**{prop: value}), NOW)
    assert change.twin.properties[prop].actual == TwinValue(value, NOW)


def test_an_update_is_applied_whole_or_not_at_all() -> None:
    with pytest.raises(TwinError):
        apply_update(thermostat(), report(power="true", target="warm"), NOW)


def test_a_declared_type_that_contradicts_the_property_is_a_400() -> None:
    update = TwinUpdate("e", None, {"target": MsgTwin(actual=TwinValue("1.5"), type="float")})
    with pytest.raises(TwinError) as caught:
        apply_update(thermostat(), update, NOW)
    assert caught.value.code == 400


def test_int_and_integer_are_the_same_type() -> None:
    update = TwinUpdate("e", None, {"target": MsgTwin(actual=TwinValue("3"), type="integer")})
    assert apply_update(thermostat(), update, NOW).twin.properties["target"].actual is not None


def test_a_mapper_cannot_delete_a_property() -> None:
    update = TwinUpdate("e", None, {"target": MsgTwin(type="deleted")})
    with pytest.raises(TwinError) as caught:
        apply_update(thermostat(), update, NOW)
    assert caught.value.code == 400


def test_a_mapper_may_report_a_property_the_cloud_did_not_declare() -> None:
    change = apply_update(thermostat(), report(humidity="40"), NOW)
    assert change.twin.properties["humidity"] == PropertyTwin(
        type="string", actual=TwinValue("40", NOW), actual_version=Versions(0, 1)
    )


def test_an_app_setting_expected_bumps_the_edge_expected_version() -> None:
    update = TwinUpdate("e", None, {"target": MsgTwin(expected=TwinValue("25"))})
    prop = apply_update(thermostat(), update, NOW).twin.properties["target"]
    assert prop.expected == TwinValue("25", NOW)
    assert prop.expected_version == Versions(cloud=1, edge=1)


def test_a_read_only_property_takes_no_expected_value() -> None:
    update = TwinUpdate("e", None, {"temperature": MsgTwin(expected=TwinValue("25"))})
    with pytest.raises(TwinError):
        apply_update(thermostat(), update, NOW)
    with pytest.raises(TwinError):
        apply_cloud_desired(thermostat(), {"temperature": "25"}, event_id="e", now_ms=NOW)


# ---------------------------------------------------------------- delta and document


def test_delta_is_sent_while_expected_differs_from_actual() -> None:
    change = apply_update(thermostat(), report(target="28"), NOW)
    assert change.delta is not None
    assert change.delta.delta == {"target": "30"}
    assert set(change.delta.twin) == {"target", "temperature", "power"}


def test_no_delta_once_actual_reaches_expected() -> None:
    change = apply_update(thermostat(), report(target="30"), NOW)
    assert change.delta is None
    assert change.twin.delta() == {}


def test_no_delta_for_properties_without_an_expected_value() -> None:
    twin = define_property(DeviceTwin(THERMO), "temperature", "float")
    assert apply_update(twin, report(temperature="20"), NOW).delta is None


def test_document_holds_last_and_current_of_each_changed_property() -> None:
    first = apply_update(thermostat(), report(temperature="20"), NOW)
    assert first.document is not None
    entry = first.document.twin["temperature"]
    assert entry.last is not None
    assert entry.last.actual is None
    assert entry.current.actual == TwinValue("20", NOW)
    second = apply_update(first.twin, report(temperature="21"), NOW + 1)
    assert second.document is not None
    entry = second.document.twin["temperature"]
    assert entry.last is not None
    assert entry.last.actual == TwinValue("20", NOW)
    assert entry.current.actual == TwinValue("21", NOW + 1)
    assert set(second.document.twin) == {"temperature"}


def test_document_of_a_new_property_has_no_last() -> None:
    change = apply_update(thermostat(), report(humidity="40"), NOW)
    assert change.document is not None
    assert change.document.twin["humidity"].last is None


def test_messages_are_published_in_order_result_delta_document() -> None:
    change = apply_update(thermostat(), report(target="28"), NOW)
    actions = [action for action, _ in change.messages()]
    assert actions == [
        DeviceAction.TWIN_UPDATE_RESULT,
        DeviceAction.TWIN_DELTA,
        DeviceAction.TWIN_DOCUMENT,
    ]


# ---------------------------------------------------------------- desired values


def test_a_cloud_desired_value_bumps_the_cloud_expected_version_and_sends_a_delta() -> None:
    change = apply_cloud_desired(thermostat(), {"target": "25"}, event_id="c1", now_ms=NOW + 9)
    prop = change.twin.properties["target"]
    assert prop.expected == TwinValue("25", NOW + 9)
    assert prop.expected_version == Versions(cloud=2, edge=0)
    assert change.result is None
    assert change.delta is not None
    assert change.delta.delta == {"target": "25"}
    assert change.delta.event_id == "c1"


def test_a_local_desired_write_bumps_the_edge_expected_version() -> None:
    local = TwinUpdate("l1", None, {"target": MsgTwin(expected=TwinValue("22"))})
    change = apply_update(thermostat(), local, NOW)
    assert change.twin.properties["target"].expected_version == Versions(cloud=1, edge=1)
    assert change.delta is not None


def test_desired_values_for_unknown_properties_are_a_404() -> None:
    with pytest.raises(TwinError) as caught:
        apply_cloud_desired(thermostat(), {"nope": "1"}, event_id="e", now_ms=NOW)
    assert caught.value.code == 404


def test_desired_values_are_checked_against_the_type() -> None:
    with pytest.raises(TwinError) as caught:
        apply_cloud_desired(thermostat(), {"target": "warm"}, event_id="e", now_ms=NOW)
    assert caught.value.code == 400


def test_the_cloud_deletes_a_property_with_a_tombstone_hidden_from_apps() -> None:
    change = apply_cloud_desired(thermostat(), {"target": None}, event_id="d", now_ms=NOW)
    prop = change.twin.properties["target"]
    assert prop.deleted
    assert prop.expected_version == Versions(cloud=2, edge=0)
    assert "target" not in change.twin.twin_map()
    assert change.document is not None
    assert change.document.twin["target"].current.type == "deleted"


def test_setting_the_same_desired_value_again_still_counts_as_a_change() -> None:
    change = apply_cloud_desired(thermostat(), {"target": "30"}, event_id="e", now_ms=NOW + 1)
    assert change.twin.properties["target"].expected_version == Versions(2, 0)


# ---------------------------------------------------------------- get and state


def test_get_answers_every_visible_property_without_versions() -> None:
    result = get_result(thermostat(), TwinGet("g1"), NOW)
    assert result.event_id == "g1"
    assert result.twin["target"].expected == TwinValue("30", NOW)
    assert result.twin["target"].expected_version is None


def test_get_for_an_unknown_device_is_a_404() -> None:
    with pytest.raises(TwinError) as caught:
        get_result(None, TwinGet("g1"), NOW)
    assert caught.value.code == 404


def test_state_online_records_the_last_online_time() -> None:
    change = apply_state(thermostat(), StateUpdate("s1", None, "online"), NOW)
    assert change.twin.state == "online"
    assert change.twin.last_online_ms == NOW
    assert change.result is not None
    assert json.loads(payloads.encode(change.result))["device"] == {
        "name": "thermo-1",
        "state": "online",
        "lastOnlineTime": "2023-11-14 22:13:20",
    }
    offline = apply_state(change.twin, StateUpdate("s2", None, "offline"), NOW + 60_000)
    assert offline.twin.last_online_ms == NOW


def test_last_online_time_of_a_device_never_online_is_empty() -> None:
    assert last_online_time(None) == ""


# ---------------------------------------------------------------- manifests


def test_a_twin_is_built_from_device_and_model_manifests() -> None:
    model = {
        "spec": {
            "properties": [
                {"name": "target", "type": "INT", "accessMode": "ReadWrite"},
                {"name": "temperature", "type": "DOUBLE", "accessMode": "ReadOnly"},
            ]
        }
    }
    device = {
        "metadata": {"name": "thermo-1", "namespace": "factory"},
        "spec": {
            "properties": [
                {"name": "target", "desired": {"value": "21"}},
                {"name": "temperature"},
            ]
        },
    }
    twin = twin_from_device(device, model, now_ms=NOW)
    assert twin.device == ResourceRef("Device", "factory", "thermo-1")
    assert twin.properties["target"].type == "int"
    assert twin.properties["target"].expected == TwinValue("21", NOW)
    assert twin.properties["target"].expected_version == Versions(1, 0)
    assert twin.properties["temperature"].type == "float"
    assert twin.properties["temperature"].read_only


# ---------------------------------------------------------------- the bus handler


def _handle(action: DeviceAction, body: Any, twin: DeviceTwin | None) -> Any:
    return handle_device_message(DeviceTopic(THERMO, action), json.dumps(body).encode(), twin, NOW)


def test_the_bus_answers_an_update_with_result_delta_and_document_topics() -> None:
    handled = _handle(
        DeviceAction.TWIN_UPDATE,
        {"event_id": "e1", "twin": {"target": {"actual": {"value": "28"}}}},
        thermostat(),
    )
    assert handled.error is None
    assert handled.twin is not None
    assert [p.topic for p in handled.publications] == [
        "$hw/events/device/default/thermo-1/twin/update/result",
        "$hw/events/device/default/thermo-1/twin/update/delta",
        "$hw/events/device/default/thermo-1/twin/update/document",
    ]
    assert json.loads(handled.publications[1].payload)["delta"] == {"target": "30"}


def test_the_bus_answers_a_bad_value_with_a_400_result_carrying_the_event_id() -> None:
    handled = _handle(
        DeviceAction.TWIN_UPDATE,
        {"event_id": "e1", "twin": {"target": {"actual": {"value": "warm"}}}},
        thermostat(),
    )
    assert handled.twin is None
    assert [p.topic for p in handled.publications] == [
        "$hw/events/device/default/thermo-1/twin/update/result"
    ]
    body = json.loads(handled.publications[0].payload)
    assert body["event_id"] == "e1"
    assert body["timestamp"] == NOW
    assert body["code"] == 400
    assert "target" in body["reason"]


@pytest.mark.parametrize(
    ("action", "result_topic"),
    [
        (DeviceAction.TWIN_UPDATE, "twin/update/result"),
        (DeviceAction.TWIN_GET, "twin/get/result"),
        (DeviceAction.STATE_UPDATE, "state/update/result"),
    ],
)
def test_the_bus_answers_a_request_for_an_unknown_device_with_a_404(
    action: DeviceAction, result_topic: str
) -> None:
    body = {"event_id": "e9", "state": "online", "twin": {}}
    handled = _handle(action, body, None)
    assert handled.publications[0].topic.endswith(result_topic)
    assert json.loads(handled.publications[0].payload)["code"] == 404


def test_the_bus_answers_get_with_the_twin() -> None:
    handled = _handle(DeviceAction.TWIN_GET, {"event_id": "g"}, thermostat())
    body = json.loads(handled.publications[0].payload)
    assert body["twin"]["target"]["expected"]["value"] == "30"
    assert handled.twin is None


def test_the_bus_ignores_what_the_agent_itself_publishes() -> None:
    handled = _handle(DeviceAction.TWIN_DELTA, {"event_id": "x"}, thermostat())
    assert handled.publications == ()


def test_replies_to_a_one_segment_topic_use_the_one_segment_form() -> None:
    topic = DeviceTopic(THERMO, DeviceAction.TWIN_GET, short_form=True)
    handled = handle_device_message(topic, b'{"event_id":"g"}', thermostat(), NOW)
    assert handled.publications[0].topic == "$hw/events/device/thermo-1/twin/get/result"


def test_a_cloud_change_becomes_delta_and_document_publications() -> None:
    change = apply_cloud_desired(thermostat(), {"target": "25"}, event_id="c", now_ms=NOW)
    assert [p.topic.rsplit("/", 1)[1] for p in publications(change)] == ["delta", "document"]


def test_membership_get_lists_the_nodes_devices() -> None:
    device = membership_device(thermostat(), description="lobby", attributes={"floor": "1"})
    handled = handle_membership_get(
        NodeTopic("edge-1", NodeAction.MEMBERSHIP_GET), b'{"event_id":"m"}', [device], NOW
    )
    body = json.loads(handled.publications[0].payload)
    assert body["event_id"] == "m"
    assert body["devices"][0]["id"] == "default/thermo-1"
    assert body["devices"][0]["description"] == "lobby"


def test_declaring_a_property_as_it_is_declared_changes_nothing() -> None:
    twin = thermostat()
    prop = twin.properties["target"]
    same = define_property(twin, "target", prop.type, read_only=prop.read_only)
    assert same is twin  # no new twin for the same declaration
    other = define_property(twin, "target", prop.type, read_only=not prop.read_only)
    assert other is not twin and other.properties["target"].read_only is not prop.read_only
    assert other.properties["target"].expected == prop.expected  # values kept
