"""The Merger's settings, completion per key, and its timer (pure: no store, no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from edgeweave.aio.clock import ManualClock
from edgeweave.cloud.pipelines.mergespec import (
    NODE_KEY,
    check_merger,
    is_complete,
    merged_path,
)
from edgeweave.cloud.pipelines.mergestate import MAX_KEYS, MergeState
from edgeweave.cloud.pipelines.mergetimer import MergeTimer
from edgeweave.errors import InvalidObject


def test_all_sources_count_and_timeout_decide_completion() -> None:
    sources = ["a", "b"]
    one = {"a": 100.0}
    both = {**one, "b": 100.0}
    every = check_merger({"complete": {"sources": "all"}}).condition
    assert not is_complete(every, sources, one, 200.0)
    assert is_complete(every, sources, both, 200.0)
    assert check_merger(None).condition == every  # the default
    assert is_complete({"count": 1}, sources, one, 100.0)
    timeout = check_merger({"complete": {"timeoutSeconds": 30}}).condition
    assert not is_complete(timeout, sources, one, 120.0)
    assert is_complete(timeout, sources, one, 131.0)
    assert is_complete(timeout, sources, both, 101.0)  # every source: no need to wait
    assert not is_complete(timeout, [], one, 101.0)  # no sources known: only the timeout
    assert not is_complete(every, sources, {}, 200.0)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"complete": {"count": 0}}, "pattern.merger.complete"),
        ({"complete": {"sources": "some"}}, "pattern.merger.complete"),
        ({"keyBy": "node"}, "pattern.merger"),
        ("all", "pattern.merger"),
        ({"key": "shift"}, "pattern.merger.key"),
        ({"key": {"path": "/*/**"}}, "pattern.merger.key.path"),
        ({"key": {"path": "/(*"}}, "pattern.merger.key.path"),
        ({"key": {"path": 3}}, "pattern.merger.key.path"),
        ({"key": {"path": "/(*)/**", "template": "$2"}}, "pattern.merger.key.template"),
        ({"key": {"path": "/(*)/**", "template": "fixed"}}, "pattern.merger.key.template"),
        ({"key": {"path": "/(*)/**", "by": "x"}}, "pattern.merger.key"),
    ],
)
def test_malformed_merger_settings_name_the_field(settings: object, field: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        check_merger(settings)
    assert caught.value.field == field


def test_a_correlation_key_comes_from_the_path_and_places_files_per_key_and_node() -> None:
    by_batch = check_merger({"key": {"path": "/(*)/**"}})
    assert by_batch.key_of("/batch-7/counts.json") == "batch-7"
    assert by_batch.key_of("/loose.json") is None  # matched by no key: not merged
    assert merged_path("batch-7", "node-a", "/batch-7/counts.json") == (
        "/batch-7/node-a/batch-7/counts.json"
    )
    by_suffix = check_merger({"key": {"path": "/**_(*).csv", "template": "shift-$1"}})
    assert by_suffix.key_of("/day/line_3.csv") == "shift-3"
    by_node = check_merger({})
    assert by_node.key_of("/anything") == NODE_KEY
    assert merged_path(NODE_KEY, "node-a", "/x.json") == "/node-a/x.json"
    assert by_node.key_json() == "node"


def test_keys_complete_one_by_one_and_the_state_round_trips_through_json() -> None:
    spec = check_merger({"key": {"path": "/(*)/**"}, "complete": {"timeoutSeconds": 10}})
    state = MergeState(spec)
    state.receive("node-a", "c1", {"b1", "b2"}, 1, now=100.0)
    assert state.evaluate(["node-a", "node-b"], now=100.0) == set()
    assert state.next_deadline() == 110.0
    state.receive("node-b", "c2", {"b1"}, 0, now=104.0)
    assert state.evaluate(["node-a", "node-b"], now=104.0) == {"b1"}  # every source has b1
    doc = state.as_json()
    assert doc["keys"]["b1"]["complete"] and not doc["keys"]["b2"]["complete"]
    assert doc["complete"] is False and doc["unkeyed"] == {"node-a": 1}
    again = MergeState.load(doc, spec)
    assert again.evaluate(["node-a", "node-b"], now=110.0) == {"b2"}  # its timeout passed
    assert again.complete_keys() == {"b1", "b2"} and again.next_deadline() is None
    assert again.as_json()["complete"] is True
    other = check_merger({"key": {"path": "/x-(*)/**"}})
    assert MergeState.load(doc, other).keys == {}  # another key: counted afresh


def test_node_keying_keeps_todays_status_shape_and_old_complete_keys_are_forgotten() -> None:
    spec = check_merger({"complete": {"count": 1}})
    state = MergeState(spec)
    state.receive("node-a", "c1", {NODE_KEY}, 0, now=5.0)
    state.evaluate(["node-a", "node-b"], now=5.0)
    doc = state.as_json()
    assert doc["complete"] is True and doc["received"]["node-a"]["commit"] == "c1"
    assert "keys" not in doc and doc["key"] == "node"
    assert MergeState.load(doc, spec).complete_keys() == {NODE_KEY}

    keyed = MergeState(check_merger({"key": {"path": "/(*)/**"}, "complete": {"count": 1}}))
    for i in range(MAX_KEYS + 5):
        keyed.receive("node-a", f"c{i}", {f"k{i}"}, 0, now=float(i))
        keyed.evaluate(["node-a"], now=float(i))
    assert len(keyed.keys) == MAX_KEYS and "k0" not in keyed.keys


async def test_the_timer_evaluates_a_merger_when_its_timeout_passes_without_a_delivery() -> None:
    clock = ManualClock(time=1000.0)
    spec = check_merger({"complete": {"timeoutSeconds": 30}})
    checked: list[str] = []
    done = asyncio.Event()

    async def check(namespace: str, name: str) -> MergeState:
        checked.append(name)
        state = MergeState(spec)
        state.receive("node-a", "c1", {NODE_KEY}, 0, now=1000.0)
        state.evaluate(["node-a", "node-b"], now=clock.time())
        done.set()
        return state

    timer = MergeTimer(clock)
    waiting = MergeState(spec)
    waiting.receive("node-a", "c1", {NODE_KEY}, 0, now=1000.0)
    timer.upsert(
        {
            "metadata": {"namespace": "default", "name": "counts"},
            "spec": {"pattern": {"merger": {"complete": {"timeoutSeconds": 30}}}},
            "status": {"merger": waiting.as_json()},
        }
    )
    assert timer.deadlines() == {("default", "counts"): 1030.0}
    task = asyncio.create_task(timer.run(check))
    try:
        await clock.wait_sleepers(1)
        assert checked == []
        clock.advance(29)
        await asyncio.sleep(0)  # let a wrongly woken timer run: nothing is due yet
        assert checked == []
        clock.advance(1)
        await asyncio.wait_for(done.wait(), 5)
        assert checked == ["counts"]
        assert timer.deadlines() == {}  # complete: nothing left to time
        timer.upsert({"metadata": {"namespace": "default", "name": "counts"}, "spec": {}})
        assert timer.deadlines() == {}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
