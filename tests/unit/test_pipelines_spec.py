"""Reading Pachyderm spec files: JSON streams and YAML documents, field paths in errors."""

from __future__ import annotations

import json

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.pipelines.spec import (
    parse_pipeline_specs,
    pipeline_version,
    run_settings,
)

EDGES = {
    "pipeline": {"name": "edges"},
    "description": "A pipeline that performs image edge detection.",
    "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}
MONTAGE = {
    "pipeline": {"name": "montage"},
    "transform": {"cmd": ["sh"], "stdin": ["montage /pfs/images/* /pfs/out/montage.png"]},
    "input": {
        "cross": [
            {"pfs": {"repo": "images", "glob": "/"}},
            {"pfs": {"repo": "edges", "glob": "/"}},
        ]
    },
}


def invalid(text: str) -> InvalidObject:
    with pytest.raises(InvalidObject) as info:
        parse_pipeline_specs(text, "spec.json")
    return info.value


def test_a_json_file_may_hold_several_specs_one_after_the_other() -> None:
    text = json.dumps(EDGES, indent=2) + "\n" + json.dumps(MONTAGE, indent=2)
    docs = parse_pipeline_specs(text, "specs.json")
    assert [d.name for d in docs] == ["edges", "montage"]
    assert docs[0].where == "specs.json:1"
    assert docs[1].where == f"specs.json:{len(json.dumps(EDGES, indent=2).splitlines()) + 1}"
    assert docs[1].pipeline.spec.input.cross is not None


def test_yaml_documents_are_read_with_their_lines() -> None:
    text = (
        "# edges\n"
        "pipeline: {name: edges}\n"
        "transform: {cmd: [python3, /edges.py]}\n"
        "input: {pfs: {repo: images, glob: /*}}\n"
        "---\n"
        "pipeline: {name: other}\n"
        "transform: {cmd: [cat]}\n"
        "input: {pfs: {repo: images, glob: /}}\n"
    )
    docs = parse_pipeline_specs(text, "p.yaml")
    assert [(d.name, d.where) for d in docs] == [("edges", "p.yaml:2"), ("other", "p.yaml:6")]


def test_an_edgeweave_pipeline_object_is_accepted_too() -> None:
    text = json.dumps(
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": "Pipeline",
            "metadata": {"name": "edges"},
            "spec": {k: v for k, v in EDGES.items() if k != "pipeline"},
        }
    )
    assert parse_pipeline_specs(text)[0].name == "edges"


def test_a_missing_nested_glob_is_named_by_its_path() -> None:
    spec = json.loads(json.dumps(MONTAGE))
    del spec["input"]["cross"][1]["pfs"]["glob"]
    err = invalid(json.dumps(spec))
    assert err.field == "input.cross[1].pfs.glob"
    assert err.message.startswith("spec.json:1: pipeline 'montage' is invalid: ")


def test_a_malformed_glob_is_named_by_its_path() -> None:
    spec = json.loads(json.dumps(MONTAGE))
    spec["input"]["cross"][1]["pfs"]["glob"] = "/[abc"
    err = invalid(json.dumps(spec))
    assert err.field == "input.cross[1].pfs.glob"
    assert "'[' without its ']'" in err.message


def test_a_join_template_must_read_an_existing_capture_group() -> None:
    spec = {
        "pipeline": {"name": "joined"},
        "transform": {"cmd": ["cat"]},
        "input": {
            "join": [
                {"pfs": {"repo": "a", "glob": "/(*).txt", "join_on": "$1"}},
                {"pfs": {"repo": "b", "glob": "/*.txt", "join_on": "$1"}},
            ]
        },
    }
    err = invalid(json.dumps(spec))
    assert err.field == "input.join[1].pfs.join_on"
    assert "has 0 capture group" in err.message


def test_the_second_of_two_specs_is_located_by_its_line() -> None:
    bad = dict(EDGES, pipeline={"name": "-bad"})
    text = json.dumps(EDGES) + "\n\n" + json.dumps(bad)
    err = invalid(text)
    assert err.message.startswith("spec.json:3: ")
    assert err.field == "pipeline.name"


def test_syntax_errors_name_the_line() -> None:
    assert invalid('{"pipeline": {"name": "x"},\n  oops}').message.startswith("spec.json:2: ")
    with pytest.raises(InvalidObject) as info:
        parse_pipeline_specs("pipeline: {name: x\ntransform: [", "p.yaml")
    assert info.value.message.startswith("p.yaml:")
    assert "must be a JSON object" in invalid(json.dumps(EDGES) + " [1]").message


def test_run_settings_fill_in_pachyderm_defaults() -> None:
    doc = parse_pipeline_specs(json.dumps(EDGES))[0]
    settings = run_settings(doc.pipeline.spec)
    assert settings.datum_tries == 3
    assert settings.datum_timeout_s is None and settings.job_timeout_s is None
    assert not settings.every_job and settings.parallelism == 1
    tuned = dict(
        EDGES,
        datum_tries=1,
        datum_timeout="1m30s",
        reprocess_spec="every_job",
        parallelism_spec={"constant": 4},
    )
    settings = run_settings(parse_pipeline_specs(json.dumps(tuned))[0].pipeline.spec)
    assert (settings.datum_tries, settings.datum_timeout_s, settings.every_job) == (1, 90.0, True)
    assert settings.parallelism == 4


def test_the_version_follows_the_transform_and_salt_only() -> None:
    base = parse_pipeline_specs(json.dumps(EDGES))[0]
    same = parse_pipeline_specs(json.dumps(dict(EDGES, description="x", parallelism_spec={})))
    assert same[0].version == base.version
    salted = parse_pipeline_specs(json.dumps(dict(EDGES, salt="again")))[0]
    assert salted.version != base.version
    changed = dict(EDGES, transform={"cmd": ["python3", "/edges.py", "-v"]})
    assert parse_pipeline_specs(json.dumps(changed))[0].version != base.version
    assert base.version == pipeline_version(base.pipeline.spec)
    assert base.version.startswith("sha256:")


def cron_spec(cron: dict[str, object], name: str = "scan") -> str:
    images = {"pfs": {"repo": "images", "glob": "/*"}}
    return json.dumps(
        {
            "pipeline": {"name": name},
            "transform": {"cmd": ["true"]},
            "input": {"cross": [{"cron": cron}, images]},
        }
    )


def test_a_cron_spec_that_does_not_parse_or_never_matches_is_named_by_its_path() -> None:
    err = invalid(cron_spec({"name": "tick", "spec": "@every 5 minutes"}))
    assert err.field == "input.cross[0].cron.spec"
    assert "@every" in err.message and err.message.startswith("spec.json:1: pipeline 'scan'")
    err = invalid(cron_spec({"name": "tick", "spec": "*/5 * * *"}))
    assert (err.field, "has 4 field(s)" in err.message) == ("input.cross[0].cron.spec", True)
    err = invalid(cron_spec({"name": "tick", "spec": "0 0 30 2 *"}))  # 30 February
    assert (err.field, "never matches" in err.message) == ("input.cross[0].cron.spec", True)


def test_a_cron_name_must_make_a_valid_repo_name() -> None:
    err = invalid(cron_spec({"name": "tick!", "spec": "@daily"}))
    assert err.field == "input.cross[0].cron.name"
    assert "'scan_tick!'" in err.message
    err = invalid(cron_spec({"name": "t" * 60, "spec": "@daily"}))
    assert err.field == "input.cross[0].cron.name"


def test_a_cron_input_is_planned_as_the_pfs_input_of_its_repo() -> None:
    [doc] = parse_pipeline_specs(cron_spec({"name": "tick", "spec": "@every 1m"}))
    [member, images] = doc.input.cross or []
    assert member.pfs is not None and member.cron is None
    assert (member.pfs.repo, member.pfs.glob, member.pfs.input_name()) == (
        "scan_tick",
        "/*",
        "tick",
    )
    assert images.pfs is not None and images.pfs.repo == "images"
    assert [c.name for c in doc.crons] == ["tick"]
    assert doc.pipeline.spec.input.cross is not None  # the spec as written is unchanged
    assert doc.pipeline.spec.input.cross[0].cron is not None
