"""The stored-JSON splice the PostgreSQL store uses to assign versions in one statement."""

from __future__ import annotations

import copy
import uuid

import pytest

from edgeweave.cloud.store import _objects
from edgeweave.cloud.store._objects import encode_json, encode_json_around_rv


def stamped(obj: dict, rv: int) -> dict:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "App", "metadata": {"name": "a"}, "spec": {"n": 1}},
        {"kind": "App", "metadata": {"resourceVersion": "7", "name": "a", "x": 1}},
        {"kind": "App", "metadata": {"name": 'q"uote\\', "labels": {"é": "ü\n"}}},
    ],
)
def test_head_version_tail_is_exactly_the_stored_json(obj: dict) -> None:
    before = copy.deepcopy(obj)
    head, tail = encode_json_around_rv(obj)
    for rv in (1, 42, 10**15):
        assert head + str(rv) + tail == encode_json(stamped(obj, rv))
    assert obj == before  # the caller's object is not modified


def test_a_marker_that_occurs_in_the_object_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    taken, fresh = uuid.uuid4(), uuid.uuid4()
    obj = {"kind": "App", "metadata": {"name": "a"}, "spec": {"text": f'"{taken.hex}"'}}
    markers = iter([taken, fresh])
    monkeypatch.setattr(_objects.uuid, "uuid4", lambda: next(markers))
    head, tail = encode_json_around_rv(obj)
    assert head + "5" + tail == encode_json(stamped(obj, 5))
