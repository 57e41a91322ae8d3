"""The hand-written validator behind the codec: fast paths, edge cases, no pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from edgeweave.errors import ProtocolError
from edgeweave.protocol import messages as m
from edgeweave.protocol.codec import decode, encode
from edgeweave.protocol.refs import ResourceRef, Versioned


def _frame(**fields: Any) -> str:
    base: dict[str, Any] = {"id": "0123456789abcdef", "parent_id": None, "sent_at": 1.0}
    return json.dumps(base | fields)


def test_the_protocol_package_does_not_import_pydantic() -> None:
    code = (
        "import sys, edgeweave.protocol.codec, edgeweave.protocol.refs; "
        "assert 'pydantic' not in sys.modules, 'pydantic imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_constructors_turn_lists_into_tuples_and_messages_are_frozen() -> None:
    msg = m.Upstream(entries=[m.UpstreamEntry(seq=1, topic="t", payload=None)])
    assert isinstance(msg.entries, tuple)
    with pytest.raises(AttributeError):
        msg.id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            [{"seq": 1, "topic": "t", "payload": 1}, {"seq": -1, "topic": "t", "payload": 1}],
            "entries[1].seq: Input should be greater than or equal to 0",
        ),
        ([{"seq": 1, "topic": "x" * (m.MAX_NAME_CHARS + 1), "payload": 1}], "entries[0].topic"),
        ([{"seq": 1, "topic": "t"}], "entries[0].payload: Field required"),
        ([{"seq": True, "topic": "t", "payload": 1}], "entries[0].seq"),
        ([7], "entries[0]: Input should be an object"),
    ],
)
def test_the_entries_fast_path_reports_like_the_generic_check(
    entries: list[Any], expected: str
) -> None:
    with pytest.raises(ProtocolError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        decode(_frame(type="upstream", entries=entries), direction="up")


def test_held_items_decode_to_refs_and_bad_ones_name_the_field() -> None:
    item = {"ref": {"kind": "App", "namespace": "", "name": "a"}, "rv": 3}
    msg = decode(_frame(type="held", items=[item], last=True), direction="up")
    assert isinstance(msg, m.Held) and msg.items == (Versioned(ResourceRef("App", "", "a"), 3),)
    long_ref = {**item, "ref": {**item["ref"], "name": "n" * 513}}
    with pytest.raises(ProtocolError, match=r"items\[1\]\.ref\.name"):
        decode(_frame(type="held", items=[item, long_ref], last=True), direction="up")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            _frame(type="upstream", entries=[]).replace(
                "[]", '[{"seq":1,"topic":"t","payload":1e400}]'
            ),
            "non-finite",
        ),
        (_frame(type="heartbeat", seq=1).replace("1.0", "Infinity"), "non-finite"),
        (_frame(type="error", reason="x").replace('"x"', '"\\ud800"'), "lone surrogate"),
        (_frame(type="heartbeat", seq=1, id="0123456789abcdef\n"), "field id:"),
        (
            _frame(
                type="welcome",
                session="s",
                heartbeat_interval_s=0,
                upstream_committed_seq=1,
                server_time=1,
            ),
            "heartbeat_interval_s",
        ),
        (_frame(type=["x"]), "unknown message type"),
        (_frame(type="heartbeat", seq=1, sent_at=10**400), "field sent_at"),
    ],
)
def test_edge_cases_are_protocol_errors(frame: str, expected: str) -> None:
    direction = "down" if '"welcome"' in frame else "up"
    with pytest.raises(ProtocolError, match=expected):
        decode(frame, direction=direction)  # type: ignore[call-overload]


def test_a_valid_surrogate_pair_escape_is_fine() -> None:
    frame = _frame(type="error", reason="x").replace('"x"', '"\\ud83d\\ude00"')
    msg = decode(frame, direction="up")
    assert isinstance(msg, m.Error) and msg.reason == "\U0001f600"


def test_encode_writes_non_finite_floats_as_null_and_refuses_foreign_objects() -> None:
    msg = m.Upstream(entries=[m.UpstreamEntry(seq=1, topic="t", payload=[float("nan"), 1.5])])
    assert json.loads(encode(msg))["entries"][0]["payload"] == [None, 1.5]
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode(m.Upstream(entries=[m.UpstreamEntry(seq=1, topic="t", payload=object())]))
