"""Workflow files: the checks that name the field, parameters, substitution, backoff."""

from __future__ import annotations

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.models.registry import validate
from edgeweave.models.workflows import Backoff, find_cycle
from edgeweave.pipelines.dagspec import (
    parse_workflow_file,
    resolve_params,
    step_argv,
    step_env,
)

GOOD = """
workflow: {name: etl}
params: {day: today, region: null}
schedule: "@every 1h"
steps:
  - {name: extract, cmd: [python3, x.py, "--day={{params.day}}", "{{ params.region }}"]}
  - {name: load, cmd: ["true"], depends_on: [extract], env: {WHERE: "r={{params.region}}"}}
"""


def error_of(text: str) -> InvalidObject:
    with pytest.raises(InvalidObject) as info:
        parse_workflow_file(text, "wf.yaml")
    return info.value


def steps(*lines: str, extra: str = "") -> str:
    return "workflow: {name: w}\n" + extra + "steps:\n" + "".join(f"  - {s}\n" for s in lines)


def test_a_short_form_file_becomes_a_workflow_object() -> None:
    (wf,) = parse_workflow_file(GOOD, "wf.yaml")
    assert wf.kind == "Workflow" and wf.metadata.name == "etl"
    assert [s.name for s in wf.spec.steps] == ["extract", "load"]
    assert wf.spec.steps[1].depends_on == ["extract"]


def test_an_unknown_dependency_is_named_with_its_field() -> None:
    err = error_of(steps("{name: a, cmd: [x]}", "{name: b, cmd: [x], depends_on: [a, nope]}"))
    assert err.field == "steps[1].depends_on[1]"
    assert "unknown step 'nope'" in err.message and err.message.startswith("wf.yaml: workflow")


def test_a_cycle_is_named_step_by_step() -> None:
    err = error_of(
        steps(
            "{name: a, cmd: [x]}",
            "{name: b, cmd: [x], depends_on: [a, d]}",
            "{name: c, cmd: [x], depends_on: [b]}",
            "{name: d, cmd: [x], depends_on: [c]}",
        )
    )
    assert err.field == "steps[1].depends_on"
    assert "cycle b -> d -> c -> b" in err.message


def test_duplicate_names_and_self_dependencies_are_refused() -> None:
    err = error_of(steps("{name: a, cmd: [x]}", "{name: a, cmd: [y]}"))
    assert err.field == "steps[1].name" and "duplicate step name 'a'" in err.message
    err = error_of(steps("{name: a, cmd: [x], depends_on: [a]}"))
    assert err.field == "steps[0].depends_on[0]" and "depends on itself" in err.message


def test_a_bad_schedule_names_the_field() -> None:
    err = error_of(steps("{name: a, cmd: [x]}", extra='schedule: "61 * * * *"\n'))
    assert err.field == "schedule" and "is invalid: schedule: minute '61'" in err.message


def test_the_api_checks_the_object_form_the_same_way() -> None:
    obj = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"steps": [{"name": "a", "cmd": ["x"], "depends_on": ["zz"]}]},
    }
    with pytest.raises(InvalidObject) as info:
        validate(obj)
    assert info.value.field == "spec.steps[0].depends_on[0]"


@pytest.mark.parametrize(
    ("backoff", "field", "words"),
    [
        ("{initial: soon}", "steps[0].retry_backoff.initial", "not like 30s"),
        ("{factor: 0.5}", "steps[0].retry_backoff.factor", "between 1 and 100"),
        ("{initial: 10s, max: 1s}", "steps[0].retry_backoff.max", "below initial"),
    ],
)
def test_a_bad_backoff_names_the_field(backoff: str, field: str, words: str) -> None:
    err = error_of(steps(f"{{name: a, cmd: [x], retries: 2, retry_backoff: {backoff}}}"))
    assert err.field == field and words in err.message


def test_shell_strings_reserved_names_and_undeclared_params_are_refused() -> None:
    err = error_of(steps("{name: a, cmd: 'echo hi'}"))
    assert err.field == "steps[0].cmd" and "argv list" in err.message
    err = error_of(steps("{name: out, cmd: [x]}"))
    assert err.field == "steps[0].name" and "reserved" in err.message
    err = error_of(steps("{name: a, cmd: [x, '{{params.nope}}']}"))
    assert err.field == "steps[0].cmd[1]" and "params.nope" in err.message


def test_run_parameters_are_checked_against_the_declared_ones() -> None:
    (wf,) = parse_workflow_file(GOOD)
    with pytest.raises(InvalidObject) as info:
        resolve_params(wf, {"region": "eu", "dya": "x"})
    assert info.value.field == "params.dya" and "has no parameter 'dya'" in info.value.message
    with pytest.raises(InvalidObject) as info:
        resolve_params(wf, {})
    assert info.value.field == "params.region" and "-p region=VALUE" in info.value.message
    assert resolve_params(wf, {"region": "eu"}) == {"day": "today", "region": "eu"}


def test_parameters_fill_argv_elements_and_env_without_a_shell() -> None:
    (wf,) = parse_workflow_file(GOOD)
    params = {"day": "mon; rm -rf /", "region": "a b"}
    assert step_argv(wf.spec.steps[0], params) == ["python3", "x.py", "--day=mon; rm -rf /", "a b"]
    env = step_env(wf.spec.steps[1], params)
    assert env == {"PARAM_DAY": "mon; rm -rf /", "PARAM_REGION": "a b", "WHERE": "r=a b"}


def test_backoff_grows_by_the_factor_up_to_the_max() -> None:
    b = Backoff(initial="1s", factor=3, max="20s")
    assert [b.delay_s(k) for k in (1, 2, 3, 4)] == [1.0, 3.0, 9.0, 20.0]


def test_find_cycle_handles_long_chains_and_reports_none_when_acyclic() -> None:
    chain = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(3000)}
    assert find_cycle(chain) == []
    chain["s0"] = ["s2999"]
    assert len(find_cycle(chain)) == 3001
