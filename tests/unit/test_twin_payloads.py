"""KubeEdge twin topics and payloads (COMPAT.md §2): parsing, round trips, limits."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin import payloads
from edgeweave.twin.dispatch import handle_device_message, handle_membership_get
from edgeweave.twin.errors import TwinError
from edgeweave.twin.messages import (
    DocumentEntry,
    ErrorResult,
    MembershipDevice,
    MembershipGet,
    MembershipGetResult,
    MembershipUpdated,
    Message,
    MsgTwin,
    StateUpdate,
    StateUpdateResult,
    TwinDelta,
    TwinDocument,
    TwinGet,
    TwinGetResult,
    TwinUpdate,
    TwinUpdateResult,
    TwinValue,
    Versions,
)
from edgeweave.twin.state import DeviceTwin, PropertyTwin
from edgeweave.twin.topics import (
    DeviceAction,
    DeviceTopic,
    NodeAction,
    NodeTopic,
    UploadTopic,
    device_topic,
    node_topic,
    parse_topic,
)

THERMO = ResourceRef("Device", "default", "thermo-1")
TEMP = MsgTwin(
    expected=TwinValue("30", 1_700_000_000_000),
    actual=TwinValue("28", 1_700_000_000_500),
    optional=False,
    type="int",
)


def _bytes(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# ---------------------------------------------------------------- topics


@pytest.mark.parametrize("action", list(DeviceAction))
def test_device_topics_parse_to_device_and_action_and_back(action: DeviceAction) -> None:
    topic = f"$hw/events/device/factory/thermo-1/{action.value}"
    parsed = parse_topic(topic)
    assert parsed == DeviceTopic(ResourceRef("Device", "factory", "thermo-1"), action)
    assert device_topic(parsed.device, action) == topic


@pytest.mark.parametrize("action", list(NodeAction))
def test_node_membership_topics_parse_to_node_and_action_and_back(action: NodeAction) -> None:
    topic = f"$hw/events/node/edge-1/{action.value}"
    assert parse_topic(topic) == NodeTopic("edge-1", action)
    assert node_topic("edge-1", action) == topic


def test_one_segment_kubeedge_device_topic_means_the_default_namespace_and_replies_alike() -> None:
    parsed = parse_topic("$hw/events/device/thermo-1/twin/update")
    assert parsed == DeviceTopic(THERMO, DeviceAction.TWIN_UPDATE, short_form=True)
    assert parsed.reply(DeviceAction.TWIN_UPDATE_RESULT) == (
        "$hw/events/device/thermo-1/twin/update/result"
    )


def test_a_device_named_like_an_action_word_still_parses() -> None:
    parsed = parse_topic("$hw/events/device/twin/update/twin/update/result")
    assert parsed == DeviceTopic(
        ResourceRef("Device", "twin", "update"), DeviceAction.TWIN_UPDATE_RESULT
    )


def test_upload_topics_keep_their_path() -> None:
    assert parse_topic("$hw/events/upload/alarms/fire") == UploadTopic("alarms/fire")


@pytest.mark.parametrize(
    "topic",
    [
        "$hw/events/device/ns/name/twin/bogus",
        "$hw/events/device/a/b/c/twin/update",
        "$hw/events/device/+/thermo/twin/update",
        "$hw/events/device//thermo/twin/update",
        "$hw/events/device/twin/update",
        "$hw/events/node/edge-1/membership",
        "$hw/events/node//membership/get",
        "$hw/events/upload/",
        "hw/events/device/ns/name/twin/update",
        "sensors/temperature",
        "",
        "$hw/events/device/" + "a" * 2000 + "/x/twin/update",
    ],
)
def test_unknown_or_malformed_topics_parse_to_none(topic: str) -> None:
    assert parse_topic(topic) is None


# ---------------------------------------------------------------- round trips

DEVICE = MembershipDevice(
    id="default/thermo-1",
    name="thermo-1",
    description="lobby thermostat",
    state="online",
    last_online="2023-11-14 22:13:20",
    attributes={"floor": "1"},
)

ROUND_TRIPS: list[tuple[DeviceAction | NodeAction, Message]] = [
    (DeviceAction.TWIN_UPDATE, TwinUpdate("e1", 1_700_000_000_000, {"temperature": TEMP})),
    (DeviceAction.TWIN_UPDATE_RESULT, TwinUpdateResult("e1", 5, {"temperature": TEMP})),
    (DeviceAction.TWIN_UPDATE_RESULT, ErrorResult("e1", 5, 400, "bad value")),
    (
        DeviceAction.TWIN_DELTA,
        TwinDelta("e2", 5, {"temperature": TEMP}, {"temperature": "30"}),
    ),
    (
        DeviceAction.TWIN_DOCUMENT,
        TwinDocument(
            "e3",
            5,
            {
                "temperature": DocumentEntry(last=None, current=TEMP),
                "mode": DocumentEntry(
                    last=MsgTwin(actual=TwinValue("eco", 1), type="string"),
                    current=MsgTwin(actual=TwinValue("boost", 2), type="string"),
                ),
            },
        ),
    ),
    (DeviceAction.TWIN_GET, TwinGet("e4")),
    (DeviceAction.TWIN_GET_RESULT, TwinGetResult("e4", 5, {"temperature": TEMP})),
    (DeviceAction.TWIN_GET_RESULT, ErrorResult("e4", 5, 404, "no such device")),
    (DeviceAction.STATE_UPDATE, StateUpdate("e5", 5, "online")),
    (
        DeviceAction.STATE_UPDATE_RESULT,
        StateUpdateResult("e5", 6, "thermo-1", "online", "2023-11-14 22:13:20"),
    ),
    (NodeAction.MEMBERSHIP_GET, MembershipGet("e6")),
    (NodeAction.MEMBERSHIP_GET_RESULT, MembershipGetResult("e6", 7, [DEVICE])),
    (NodeAction.MEMBERSHIP_UPDATED, MembershipUpdated("e7", 8, [DEVICE], [])),
]


@pytest.mark.parametrize(("action", "message"), ROUND_TRIPS)
def test_every_payload_shape_round_trips_through_encode_and_decode(
    action: DeviceAction | NodeAction, message: Message
) -> None:
    assert payloads.decode(action, payloads.encode(message)) == message


def test_twin_update_payload_has_the_kubeedge_msgtwin_shape() -> None:
    sent = json.loads(payloads.encode(TwinUpdate("e1", 1, {"temperature": TEMP})))
    assert sent == {
        "event_id": "e1",
        "timestamp": 1,
        "twin": {
            "temperature": {
                "expected": {"value": "30", "metadata": {"timestamp": 1_700_000_000_000}},
                "actual": {"value": "28", "metadata": {"timestamp": 1_700_000_000_500}},
                "optional": False,
                "metadata": {"type": "int"},
            }
        },
    }


def test_error_result_payload_has_event_id_timestamp_code_and_reason() -> None:
    sent = json.loads(payloads.encode(ErrorResult("e1", 9, 400, "bad")))
    assert sent == {"event_id": "e1", "timestamp": 9, "code": 400, "reason": "bad"}


def test_state_update_result_payload_nests_the_device() -> None:
    sent = json.loads(payloads.encode(StateUpdateResult("e", 1, "thermo-1", "online", "x")))
    assert sent["device"] == {"name": "thermo-1", "state": "online", "lastOnlineTime": "x"}


def test_membership_attributes_are_sent_as_kubeedge_msgattr_and_plain_strings_are_read() -> None:
    sent = json.loads(payloads.encode(MembershipGetResult("e", 1, [DEVICE])))
    assert sent["devices"][0]["attributes"]["floor"]["value"] == "1"
    plain = _bytes({"devices": [{"id": "default/x", "attributes": {"floor": "2"}}]})
    decoded = payloads.decode(NodeAction.MEMBERSHIP_GET_RESULT, plain)
    assert isinstance(decoded, MembershipGetResult)
    assert decoded.devices[0].attributes == {"floor": "2"}


def test_versions_travel_when_set() -> None:
    twin = MsgTwin(actual=TwinValue("1"), expected_version=Versions(2, 3))
    message = TwinUpdate("e", None, {"p": twin})
    decoded = payloads.decode(DeviceAction.TWIN_UPDATE, payloads.encode(message))
    assert decoded == message
    assert b'"expected_version":{"cloud":2,"edge":3}' in payloads.encode(message)


# ---------------------------------------------------------------- lenient reading


def test_field_names_are_read_case_insensitively() -> None:
    payload = _bytes(
        {
            "Event_ID": "e1",
            "TimeStamp": 7,
            "Twin": {
                "temperature": {
                    "Actual": {"Value": "28", "MetaData": {"Timestamp": 3}},
                    "Metadata": {"Type": "INT"},
                }
            },
        }
    )
    decoded = payloads.decode(DeviceAction.TWIN_UPDATE, payload)
    assert decoded == TwinUpdate(
        "e1", 7, {"temperature": MsgTwin(actual=TwinValue("28", 3), type="int")}
    )


def test_a_state_key_sent_as_capitalised_state_is_understood() -> None:
    decoded = payloads.decode(DeviceAction.STATE_UPDATE, _bytes({"State": "Online"}))
    assert decoded == StateUpdate("", None, "online")


def test_property_names_keep_their_case() -> None:
    decoded = payloads.decode(
        DeviceAction.TWIN_UPDATE, _bytes({"twin": {"Temp": {"actual": {"value": "1"}}}})
    )
    assert isinstance(decoded, TwinUpdate)
    assert list(decoded.twin) == ["Temp"]


def test_unknown_fields_are_ignored() -> None:
    decoded = payloads.decode(DeviceAction.TWIN_GET, _bytes({"event_id": "e", "extra": [1, 2]}))
    assert decoded == TwinGet("e")


# ---------------------------------------------------------------- strict limits


def _decode_error(action: DeviceAction | NodeAction, payload: bytes) -> TwinError:
    with pytest.raises(TwinError) as caught:
        payloads.decode(action, payload)
    return caught.value


@pytest.mark.parametrize("key", ["", "a b", "temp!", "x" * 129, "température", "a+b", "$x"])
def test_a_bad_property_key_is_a_400(key: str) -> None:
    payload = _bytes({"twin": {key: {"actual": {"value": "1"}}}})
    assert _decode_error(DeviceAction.TWIN_UPDATE, payload).code == 400


def test_the_longest_allowed_key_and_every_allowed_character_pass() -> None:
    keys = ["k" * 128, "aZ09-_.,:/@#"]
    payload = _bytes({"twin": {k: {"actual": {"value": "v"}} for k in keys}})
    decoded = payloads.decode(DeviceAction.TWIN_UPDATE, payload)
    assert isinstance(decoded, TwinUpdate)
    assert sorted(decoded.twin) == sorted(keys)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("x" * 513, "512"),
        ("hello world", "invalid"),
        ("1+1", "invalid"),
    ],
)
def test_a_bad_value_is_a_400_that_names_the_property(value: str, fragment: str) -> None:
    error = _decode_error(
        DeviceAction.TWIN_UPDATE, _bytes({"twin": {"temp": {"actual": {"value": value}}}})
    )
    assert error.code == 400
    assert "temp" in error.message
    assert fragment in error.message


def test_a_value_of_512_characters_is_accepted() -> None:
    payload = _bytes({"twin": {"temp": {"actual": {"value": "v" * 512}}}})
    assert isinstance(payloads.decode(DeviceAction.TWIN_UPDATE, payload), TwinUpdate)


@pytest.mark.parametrize(
    "twin",
    [
        {"temp": {"actual": {"value": 28}}},
        {"temp": {"actual": {"value": True}}},
        {"temp": {"actual": {}}},
        {"temp": {"actual": "28"}},
        {"temp": "28"},
        {"temp": {"metadata": {"type": "decimal"}}},
        {"temp": {"actual": {"value": "abc"}, "metadata": {"type": "int"}}},
        {"temp": {"actual": {"value": "1", "metadata": {"timestamp": -1}}}},
        {"temp": {"actual": {"value": "1", "metadata": {"timestamp": "now"}}}},
        {"temp": {"optional": "yes"}},
        {"temp": {"expected_version": {"cloud": "1"}}},
    ],
)
def test_a_badly_typed_field_is_a_400(twin: dict[str, Any]) -> None:
    assert _decode_error(DeviceAction.TWIN_UPDATE, _bytes({"twin": twin})).code == 400


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"event_id": NaN}',
        b"\xff\xfe\xfa",
        b"[" * 100_000,
        b'{"event_id": 5}',
        b'{"event_id": "a", "EVENT_ID": "b"}',
        b'{"twin": []}',
    ],
)
def test_malformed_payloads_are_a_400(payload: bytes) -> None:
    assert _decode_error(DeviceAction.TWIN_UPDATE, payload).code == 400


def test_a_payload_over_the_byte_limit_is_a_400() -> None:
    payload = _bytes({"event_id": "e", "pad": "x" * 200})
    assert payloads.decode(DeviceAction.TWIN_GET, payload) == TwinGet("e")
    with pytest.raises(TwinError) as caught:
        payloads.decode(DeviceAction.TWIN_GET, payload, max_bytes=100)
    assert caught.value.code == 400
    assert "limit is 100" in caught.value.message


def test_too_many_properties_is_a_400() -> None:
    twin = {f"p{i}": {"actual": {"value": "1"}} for i in range(payloads.MAX_PROPERTIES + 1)}
    assert _decode_error(DeviceAction.TWIN_UPDATE, _bytes({"twin": twin})).code == 400


def test_an_unknown_device_state_is_a_400() -> None:
    assert _decode_error(DeviceAction.STATE_UPDATE, _bytes({"state": "sleepy"})).code == 400


# ---------------------------------------------------------------- never crash

ALL_ACTIONS: list[DeviceAction | NodeAction] = [*DeviceAction, *NodeAction]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
known_keys = st.sampled_from(
    [
        "event_id",
        "Event_ID",
        "timestamp",
        "twin",
        "state",
        "State",
        "delta",
        "devices",
        "added_devices",
        "code",
        "device",
        "temp",
        "actual",
        "expected",
        "value",
        "metadata",
        "type",
        "optional",
        "expected_version",
        "last",
        "current",
        "attributes",
        "id",
    ]
)
shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(known_keys, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(action=st.sampled_from(ALL_ACTIONS), payload=st.binary(max_size=200))
def test_arbitrary_bytes_on_any_topic_raise_nothing_but_twin_error(
    action: DeviceAction | NodeAction, payload: bytes
) -> None:
    with contextlib.suppress(TwinError):
        payloads.decode(action, payload)


@settings(max_examples=300, deadline=None)
@given(action=st.sampled_from(ALL_ACTIONS), body=json_values | shaped)
def test_arbitrary_json_on_any_topic_raises_nothing_but_twin_error(
    action: DeviceAction | NodeAction, body: Any
) -> None:
    try:
        payloads.decode(action, json.dumps(body).encode())
    except TwinError as e:
        assert e.code == 400


KNOWN = DeviceTwin(THERMO, {"temp": PropertyTwin(type="int")})


@settings(max_examples=300, deadline=None)
@given(
    action=st.sampled_from(list(DeviceAction)),
    body=shaped,
    known=st.booleans(),
)
def test_the_bus_handler_answers_any_json_on_any_device_topic_without_raising(
    action: DeviceAction, body: Any, known: bool
) -> None:
    topic = DeviceTopic(THERMO, action)
    handled = handle_device_message(topic, json.dumps(body).encode(), KNOWN if known else None, 1)
    for publication in handled.publications:
        assert parse_topic(publication.topic) is not None
        json.loads(publication.payload)
    if handled.error is not None:
        assert handled.error.code in (400, 404)


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=200))
def test_the_membership_handler_answers_any_bytes_without_raising(payload: bytes) -> None:
    topic = NodeTopic("edge-1", NodeAction.MEMBERSHIP_GET)
    handled = handle_membership_get(topic, payload, [DEVICE], 1)
    assert len(handled.publications) == 1
    assert handled.publications[0].topic == "$hw/events/node/edge-1/membership/get/result"


def test_the_delta_alone_reads_as_the_full_decode_does() -> None:
    delta = TwinDelta("e2", 5, {"temperature": TEMP}, {"temperature": "30", "mode": "eco"})
    payload = payloads.encode(delta)
    assert payloads.decode_delta_values(payload) == delta.delta
    error = payloads.encode(ErrorResult("e2", 5, 400, "bad value"))
    assert payloads.decode_delta_values(error) is None  # the full decode reads error results
    for bad in (b"not json", b'{"event_id":"e","delta":{"t":1}}', b'{"event_id":"e","delta":[]}'):
        with pytest.raises(TwinError):
            payloads.decode(DeviceAction.TWIN_DELTA, bad)
        with pytest.raises(TwinError):
            payloads.decode_delta_values(bad)
