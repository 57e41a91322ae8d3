"""RFC 7386 JSON merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgeweave.errors import BadRequest
from edgeweave.models.patch import copy_json, merge_patch, merge_patch_into


# (target, patch, result) pairs from RFC 7386 appendix A, wrapped in an object where needed
@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_the_rfc_examples(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_does_not_mutate_or_share_with_its_inputs() -> None:
    target = {"spec": {"env": {"A": "1"}, "ports": [{"port": 1}]}}
    patch = {"spec": {"env": {"B": "2"}, "extra": {"x": [1]}}}
    before_t, before_p = copy.deepcopy(target), copy.deepcopy(patch)
    out = merge_patch(target, patch)
    assert target == before_t and patch == before_p
    out["spec"]["ports"][0]["port"] = 9
    out["spec"]["extra"]["x"].append(2)
    assert target == before_t and patch == before_p


def test_an_empty_patch_returns_an_equal_copy() -> None:
    target = {"a": {"b": 1}}
    out = merge_patch(target, {})
    assert out == target and out is not target


def test_a_patch_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        merge_patch({"a": 1}, ["not", "an", "object"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": [1], "b": 2}, {"a": [{"x": None}], "b": None}, {"a": [{"x": None}]}),
    ],
)
def test_merge_patch_into_changes_the_target_by_the_same_rules(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    assert merge_patch(target, patch) == result
    merge_patch_into(target, patch)
    assert target == result


def test_merge_patch_into_shares_nothing_with_the_patch() -> None:
    target: dict[str, Any] = {"status": {"twins": []}}
    patch = {"status": {"twins": [{"propertyName": "t", "reported": {"value": "1"}}]}}
    merge_patch_into(target, patch)
    target["status"]["twins"][0]["reported"]["value"] = "2"
    assert patch["status"]["twins"][0]["reported"]["value"] == "1"


def test_copy_json_copies_every_container() -> None:
    value = {"a": [{"b": [1, "x", None, 1.5, True]}], "c": {}}
    out = copy_json(value)
    assert out == value
    out["a"][0]["b"].append(2)
    out["c"]["d"] = 1
    assert value == {"a": [{"b": [1, "x", None, 1.5, True]}], "c": {}}
