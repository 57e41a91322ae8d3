"""The link codec: round trips, direction, size limits, error paths (edge-link.md §3)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.errors import PayloadTooLarge, ProtocolError
from edgeweave.protocol import messages as m
from edgeweave.protocol.codec import DEFAULT_MAX_FRAME_BYTES, decode, encode, encode_upstream
from edgeweave.protocol.refs import ResourceRef, Versioned, held_digest

REF = ResourceRef("App", "default", "counter")
HELD = (Versioned(REF, 4), Versioned(ResourceRef("Node", "", "n1"), 9))
DIGEST = "sha256:" + "ab" * 32

UP_SAMPLES: list[m.Message] = [
    m.Hello(
        agent_version="0.1.0",
        boot_id="boot-1",
        held_count=2,
        held_digest=held_digest(HELD),
        capacity=m.Capacity(cpu=3.5, memory_bytes=8 << 30),
        addresses=[m.Address(type="InternalIP", address="10.0.0.7")],
        labels={"role": "camera"},
    ),
    m.Held(items=HELD, last=True),
    m.Ack(items=HELD),
    m.Heartbeat(
        seq=12,
        conditions=[m.Condition(type="Ready", status="True", reason="AgentReady")],
        apps_running=3,
        apps_failed=1,
    ),
    m.Upstream(
        entries=[
            m.UpstreamEntry(seq=1, topic="event", payload={"reason": "Started", "n": [1, 2.5]}),
            m.UpstreamEntry(seq=2, topic="metric", payload=None),
        ]
    ),
    m.ArtifactUrlRequest(digest=DIGEST),
    m.CommitUrlRequest(commit="0" * 32),
    m.MergeUrlRequest(pipeline=m.AppName(namespace="default", name="counts")),
    m.OutputUrlRequest(pipeline=m.AppName(namespace="default", name="upper")),
    m.Renew(csr="-----BEGIN CERTIFICATE REQUEST-----\n..."),
    m.LogsData(stream_id="s1", lines=["a", "b"], eof=True),
    m.Error(reason="Forbidden", message="not yours"),
]
DOWN_SAMPLES: list[m.Message] = [
    m.Welcome(
        session="sess-1", heartbeat_interval_s=10, upstream_committed_seq=41, server_time=1.5
    ),
    m.Resync(),
    m.Upsert(ref=REF, rv=4, object={"kind": "App", "metadata": {"name": "counter"}}),
    m.Delete(ref=REF, rv=5),
    m.SyncDone(rv=5),
    m.HeartbeatAck(parent_id="0123456789abcdef"),
    m.UpstreamAck(committed_seq=2),
    m.ArtifactUrl(digest=DIGEST, url="https://cloud/api/v1/objects/x", expires_at=99.0),
    m.CommitUrl(commit="0" * 32, url="https://cloud/api/v1/pfs/transfer/x", expires_at=99.0),
    m.MergeUrl(
        pipeline=m.AppName(namespace="default", name="counts"),
        url="https://cloud/api/v1/pfs/merge/default/counts",
        expires_at=99.0,
    ),
    m.OutputUrl(
        pipeline=m.AppName(namespace="default", name="upper"),
        url="https://cloud/api/v1/pfs/output/default/upper",
        expires_at=99.0,
    ),
    m.Renewed(certificate="-----BEGIN CERTIFICATE-----\n..."),
    m.LogsRequest(
        stream_id="s1", app=m.AppName(namespace="default", name="counter"), tail_lines=100
    ),
    m.LogsCancel(stream_id="s1"),
    m.RelayOpen(
        stream_id="r1",
        service=m.AppName(namespace="default", name="web"),
        port=80,
        target_port=8080,
    ),
    m.Error(reason="Forbidden", message="no"),
]


def _frame(**fields: Any) -> str:
    base: dict[str, Any] = {"id": "0123456789abcdef", "parent_id": None, "sent_at": 1.0}
    return json.dumps(base | fields, ensure_ascii=False)


@pytest.mark.parametrize("msg", UP_SAMPLES, ids=lambda x: type(x).__name__)
def test_every_edge_message_round_trips_upstream(msg: m.Message) -> None:
    assert decode(encode(msg), direction="up") == msg


@pytest.mark.parametrize("msg", DOWN_SAMPLES, ids=lambda x: type(x).__name__)
def test_every_cloud_message_round_trips_downstream(msg: m.Message) -> None:
    assert decode(encode(msg).encode(), direction="down") == msg


def test_samples_cover_every_message_type_of_both_tables() -> None:
    assert {type(x) for x in UP_SAMPLES} == set(m.UP_TYPES.values())
    assert {type(x) for x in DOWN_SAMPLES} == set(m.DOWN_TYPES.values())


def test_encode_is_compact_json_with_the_common_fields() -> None:
    text = encode(m.Resync(id="00000000000000ff", sent_at=2.0))
    assert text == '{"type":"resync","id":"00000000000000ff","parent_id":null,"sent_at":2.0}'


def test_messages_get_fresh_hex_ids_and_reply_to_sets_parent_id() -> None:
    hb = m.Heartbeat(seq=1)
    other = m.Heartbeat(seq=1)
    assert len(hb.id) == 16 and int(hb.id, 16) >= 0 and hb.id != other.id
    ack = m.reply_to(hb, m.HeartbeatAck())
    assert ack.parent_id == hb.id and isinstance(ack, m.HeartbeatAck)


def test_artifact_url_decodes_to_the_request_upstream_and_the_answer_downstream() -> None:
    request = decode(_frame(type="artifact_url", digest=DIGEST), direction="up")
    assert isinstance(request, m.ArtifactUrlRequest)
    frame = _frame(type="artifact_url", digest=DIGEST, url="https://x", expires_at=3)
    assert isinstance(decode(frame, direction="down"), m.ArtifactUrl)


@pytest.mark.parametrize(
    ("frame", "direction"),
    [
        (_frame(type="upsert", ref={}, rv=1, object={}), "up"),
        (_frame(type="ack", items=[]), "down"),
    ],
)
def test_message_from_the_wrong_direction_is_a_protocol_error(frame: str, direction: Any) -> None:
    with pytest.raises(ProtocolError, match="not accepted"):
        decode(frame, direction=direction)


def test_oversize_frame_is_refused_before_parsing() -> None:
    junk = "x" * (DEFAULT_MAX_FRAME_BYTES + 1)  # not JSON: size must win
    with pytest.raises(PayloadTooLarge):
        decode(junk, direction="up")
    with pytest.raises(PayloadTooLarge):
        decode(b"{" * 101, direction="up", max_bytes=100)


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    frame = _frame(type="error", reason="X", message="é" * 60)  # 120 bytes of message
    assert len(frame) < 200 < len(frame.encode())
    with pytest.raises(PayloadTooLarge):
        decode(frame, direction="up", max_bytes=200)
    assert isinstance(decode(frame, direction="up", max_bytes=400), m.Error)


def _ref(**fields: Any) -> dict[str, Any]:
    return {"kind": "App", "namespace": "", "name": "a"} | fields


def _entry(**fields: Any) -> dict[str, Any]:
    return {"seq": 1, "topic": "t", "payload": 1} | fields


_HELLO = {
    "agent_version": "1",
    "boot_id": "b",
    "held_count": 0,
    "held_digest": "0" * 64,
    "capacity": {"cpu": 1, "memory_bytes": 1},
}
_NAMESPACELESS = {"kind": "App", "name": "a"}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"hello"', "not a JSON object"),
        ("{}", "no 'type' field"),
        (_frame(type="nope"), "unknown message type 'nope'"),
        (_frame(type="heartbeat", seq="1"), "field seq:"),
        (_frame(type="heartbeat", seq=True), "field seq:"),
        (_frame(type="heartbeat", seq=-1), "field seq:"),
        (_frame(type="heartbeat"), "field seq: Field required"),
        (_frame(type="held", items=[], last=1), "field last:"),
        (_frame(type="ack", items=[{"ref": _NAMESPACELESS, "rv": 1}]), "items[0].ref.namespace"),
        (_frame(type="ack", items=[{"ref": _ref(), "rv": "1"}]), "items[0].rv"),
        (_frame(type="renew", csr="x", id="XYZ"), "field id:"),
        (_frame(type="artifact_url", digest="md5:00"), "field digest:"),
        (_frame(type="upstream", entries=[_entry(), _entry(seq=2.5)]), "entries[1].seq"),
        (_frame(type="upstream", entries=[_entry(payload=float("nan"))]), "non-finite"),
        (_frame(type="hello", **_HELLO, labels={"a": 1}), "labels.a"),
    ],
)
def test_malformed_frames_are_protocol_errors_naming_the_field(frame: str, expected: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(frame, direction="up")
    assert expected in str(caught.value)


def test_lists_and_strings_are_bounded() -> None:
    item = '{"ref":{"kind":"A","namespace":"","name":"n"},"rv":1}'
    items = ",".join([item] * (m.MAX_ITEMS + 1))
    frame = '{"type":"ack","id":"0123456789abcdef","sent_at":1,"items":[' + items + "]}"
    with pytest.raises(ProtocolError, match="field items:"):
        decode(frame, direction="up", max_bytes=1 << 30)
    with pytest.raises(ProtocolError, match="field message:"):
        decode(
            _frame(type="error", reason="X", message="x" * (m.MAX_STR_CHARS + 1)),
            direction="up",
        )


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    msg = decode(_frame(type="resync", added_in_v2=True), direction="down")
    assert isinstance(msg, m.Resync)


def test_decoded_payload_stays_plain_json() -> None:
    frame = _frame(type="upstream", entries=[{"seq": 7, "topic": "event", "payload": {"a": [1]}}])
    msg = decode(frame, direction="up")
    assert isinstance(msg, m.Upstream)
    assert msg.entries[0].payload == {"a": [1]}
    assert type(msg.entries[0].payload) is dict


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.text(), st.binary()), direction=st.sampled_from(["up", "down"]))
def test_arbitrary_input_raises_only_protocol_errors(data: str | bytes, direction: Any) -> None:
    with contextlib.suppress(ProtocolError, PayloadTooLarge):
        decode(data, direction=direction, max_bytes=512)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(["type", "id", "seq", "entries", "items"]), _json),
    tag=st.sampled_from([*m.UP_TYPES, *m.DOWN_TYPES, "x"]),
)
def test_arbitrary_json_objects_raise_only_protocol_errors(
    fields: dict[str, Any], tag: str
) -> None:
    frame = json.dumps({"type": tag, **fields})
    for direction in ("up", "down"):
        with contextlib.suppress(ProtocolError):
            decode(frame, direction=direction)


def test_an_upstream_frame_with_spliced_entry_texts_decodes_like_an_encoded_one() -> None:
    texts = [
        '{"seq":7,"topic":"event","payload":{"reason":"Started"}}',
        '{"seq":8,"topic":"app.status","payload":{"phase":"Running","ready":true}}',
    ]
    head = m.Upstream(entries=())
    msg = decode(encode_upstream(head, texts), direction="up")
    assert isinstance(msg, m.Upstream) and msg.id == head.id
    assert msg.entries == (
        m.UpstreamEntry(seq=7, topic="event", payload={"reason": "Started"}),
        m.UpstreamEntry(seq=8, topic="app.status", payload={"phase": "Running", "ready": True}),
    )


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"heartbeat","seq":NaN}',
        '{"type":"heartbeat","seq":1e400}',
        '{"type":"event","x":"\\ud800"}',
        '{"type":',
        "[]",
        '{"type":"heartbeat","seq":"1"}',
    ],
)
def test_a_fast_json_parser_is_held_to_the_same_rules(frame: str) -> None:
    import orjson

    with pytest.raises(ProtocolError):
        decode(frame, direction="up", loads=orjson.loads)


def test_a_fast_json_parser_decodes_the_same_messages() -> None:
    import orjson

    msg = m.Heartbeat(seq=3, apps_running=2)
    assert decode(encode(msg), direction="up", loads=orjson.loads) == msg
