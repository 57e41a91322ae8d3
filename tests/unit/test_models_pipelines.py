"""Repo and Pipeline models, and turning raw Pachyderm specs into Pipelines."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.models import registry
from edgeweave.models.pipelines import (
    PACHYDERM_PROJECT_ANNOTATION,
    Pipeline,
    pipeline_from_pachyderm,
)


def pachyderm_spec() -> dict[str, Any]:
    return {
        "pipeline": {"name": "edges"},
        "description": "A pipeline that performs image edge detection.",
        "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
    }


def pipeline(spec_changes: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = pipeline_from_pachyderm(pachyderm_spec())
    obj["spec"].update(spec_changes or {})
    return obj


def invalid(obj: dict[str, Any]) -> InvalidObject:
    with pytest.raises(InvalidObject) as info:
        registry.validate(obj)
    return info.value


def test_a_pachyderm_spec_becomes_a_pipeline_named_after_it() -> None:
    obj = pipeline_from_pachyderm(pachyderm_spec())
    assert obj["apiVersion"] == "edgeweave.io/v1" and obj["kind"] == "Pipeline"
    assert obj["metadata"] == {"name": "edges"}
    expected = pachyderm_spec()
    del expected["pipeline"]
    assert obj["spec"] == expected
    assert registry.validate(obj)["spec"] == expected


def test_conversion_keeps_the_project_and_namespace_and_passes_edgeweave_objects_through() -> None:
    spec = pachyderm_spec()
    spec["pipeline"]["project"] = {"name": "vision"}
    obj = pipeline_from_pachyderm(spec, namespace="site-a")
    assert obj["metadata"]["namespace"] == "site-a"
    assert obj["metadata"]["annotations"] == {PACHYDERM_PROJECT_ANNOTATION: "vision"}
    assert pipeline_from_pachyderm(obj) == obj


def test_conversion_errors_use_the_paths_of_the_pachyderm_file() -> None:
    spec = pachyderm_spec()
    spec["transform"]["cmd"] = "python3 /edges.py"
    with pytest.raises(InvalidObject) as info:
        pipeline_from_pachyderm(spec)
    assert info.value.field == "transform.cmd"
    assert "argv list" in info.value.message
    spec = pachyderm_spec()
    spec["pipeline"]["name"] = "-edges"
    with pytest.raises(InvalidObject) as info:
        pipeline_from_pachyderm(spec)
    assert info.value.field == "pipeline.name"


def test_a_spec_without_a_pipeline_name_is_rejected() -> None:
    spec = pachyderm_spec()
    del spec["pipeline"]
    with pytest.raises(InvalidObject) as info:
        pipeline_from_pachyderm(spec)
    assert info.value.field == "pipeline.name"


@pytest.mark.parametrize("name", ["edges", "Edges_2", "a", "word-count"])
def test_pachyderm_names_with_capitals_and_underscores_are_valid(name: str) -> None:
    obj = pipeline()
    obj["metadata"]["name"] = name
    registry.validate(obj)


@pytest.mark.parametrize("name", ["-edges", "edges_", "has space", "x" * 64])
def test_names_breaking_the_pachyderm_rule_are_rejected(name: str) -> None:
    obj = pipeline()
    obj["metadata"]["name"] = name
    assert invalid(obj).field == "metadata.name"


def test_fields_edgeweave_does_not_check_are_kept_as_written() -> None:
    obj = pipeline({"resource_requests": {"memory": "1G"}, "autoscaling": True})
    obj["spec"]["input"]["pfs"]["commit"] = "abc"
    assert registry.validate(copy.deepcopy(obj))["spec"] == {
        **obj["spec"],
        "resource_requests": {"memory": "1G"},
        "autoscaling": True,
    }


def test_every_input_type_nests_recursively() -> None:
    obj = pipeline(
        {
            "input": {
                "cross": [
                    {"pfs": {"repo": "images", "glob": "/*"}},
                    {
                        "union": [
                            {"pfs": {"repo": "models", "glob": "/", "name": "m1"}},
                            {"cron": {"name": "tick", "spec": "@every 60s"}},
                        ]
                    },
                    {
                        "join": [
                            {"pfs": {"repo": "a", "glob": "/(*).txt", "join_on": "$1"}},
                            {
                                "pfs": {
                                    "repo": "b",
                                    "glob": "/(*).txt",
                                    "join_on": "$1",
                                    "outer_join": True,
                                }
                            },
                        ]
                    },
                    {"group": [{"pfs": {"repo": "c", "glob": "/(*)-*", "group_by": "$1"}}]},
                ]
            }
        }
    )
    checked = Pipeline.model_validate(registry.validate(obj))
    assert checked.spec.input.names() == ["images", "m1", "tick", "a", "b", "c"]


def test_an_input_must_have_exactly_one_type() -> None:
    both = pipeline(
        {
            "input": {
                "pfs": {"repo": "images", "glob": "/*"},
                "cron": {"name": "t", "spec": "@daily"},
            }
        }
    )
    err = invalid(both)
    assert err.field == "spec.input"
    assert "exactly one of pfs, cross, union, join, group, cron" in err.message
    nested = pipeline({"input": {"cross": [{"pfs": {"repo": "images", "glob": "/*"}}, {}]}})
    assert invalid(nested).field == "spec.input.cross[1]"


def test_join_members_need_join_on_and_cross_members_distinct_names() -> None:
    join = pipeline({"input": {"join": [{"pfs": {"repo": "a", "glob": "/*"}}]}})
    assert invalid(join).field == "spec.input.join[0]"
    cross = pipeline(
        {
            "input": {
                "cross": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "a", "glob": "/"}}]
            }
        }
    )
    assert "two inputs named 'a'" in invalid(cross).message


def test_a_pipeline_cannot_read_its_own_output_repo() -> None:
    obj = pipeline({"input": {"pfs": {"repo": "edges", "glob": "/*"}}})
    assert invalid(obj).field == "spec.input"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"datum_tries": 0}, "spec.datum_tries"),
        ({"datum_timeout": "soon"}, "spec.datum_timeout"),
        ({"reprocess_spec": "always"}, "spec.reprocess_spec"),
        ({"parallelism_spec": {"constant": -1}}, "spec.parallelism_spec.constant"),
        ({"transform": {"cmd": ["sh"], "err_cmd": "true"}}, "spec.transform.err_cmd"),
        ({"transform": {"stdin": ["echo hi"]}}, "spec.transform.cmd"),
        ({"input": {"pfs": {"repo": "images"}}}, "spec.input.pfs.glob"),
    ],
)
def test_listed_fields_are_checked_strictly(changes: dict[str, Any], field: str) -> None:
    assert invalid(pipeline(changes)).field == field


def test_placement_is_cloud_or_a_node_selection() -> None:
    registry.validate(pipeline({"placement": "cloud"}))
    registry.validate(pipeline({"placement": {"nodeSelector": {"role": "camera"}}}))
    registry.validate(pipeline({"placement": {"nodeNames": ["edge-1"]}}))
    assert invalid(pipeline({"placement": "edge"})).field == "spec.placement"
    assert invalid(pipeline({"placement": {}})).field == "spec.placement"
    assert (
        invalid(pipeline({"placement": {"nodeNames": ["Bad_Name"]}})).field
        == "spec.placement.nodeNames"
    )
    err = invalid(pipeline({"placement": 3}))
    assert err.field == "spec.placement"
    assert "must be 'cloud'" in err.message


def test_a_pattern_is_exactly_one_of_copier_filter_merger() -> None:
    registry.validate(pipeline({"pattern": {"filter": {"predicate": "score > 0.5"}}}))
    assert invalid(pipeline({"pattern": {"copier": {}, "merger": {}}})).field == "spec.pattern"
    assert invalid(pipeline({"pattern": {"mirror": {}}})).field == "spec.pattern.mirror"


def repo(spec: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Repo",
        "metadata": {"name": "images"},
    }
    if spec is not None:
        obj["spec"] = spec
    return obj


def test_a_repo_lives_in_the_cloud_or_on_a_node() -> None:
    assert "spec" not in registry.validate(repo(None))
    registry.validate(repo({"location": "cloud", "description": "camera frames"}))
    out = registry.validate(repo({"location": {"node": "edge-1"}, "branches": ["master", "v1.0"]}))
    assert out["spec"]["location"] == {"node": "edge-1"}
    assert invalid(repo({"location": "moon"})).field == "spec.location"
    assert invalid(repo({"location": {"node": "Edge_1"}})).field == "spec.location.node"
    assert invalid(repo({"branches": ["bad branch"]})).field == "spec.branches"
