"""Reading workflow files into checked ``Workflow`` objects; run parameters and substitution.

A workflow file is YAML (or JSON), one or more documents separated by ``---``. Each is the
short form::

    workflow: {name: etl}
    params: {day: "today", region: null}     # null: every run must give it
    schedule: "@daily"                        # optional, cron text (cron.py)
    steps:
      - {name: extract, cmd: [python3, extract.py, "{{params.day}}"]}
      - {name: load, cmd: [python3, load.py], depends_on: [extract], retries: 2}

or a ``Workflow`` object (``apiVersion: edgeweave.io/v1``, ``kind: Workflow``). Both come out
as the object; errors are :class:`InvalidObject` starting with ``file: workflow NAME`` and
naming the field as written (``steps[1].depends_on[0]``, ``schedule``).

Parameters of a run (:func:`resolve_params`): every given name must be declared, every
declared parameter without a default must be given; the error names the parameter. A step
sees them as ``PARAM_<NAME>`` variables and as ``{{params.NAME}}`` in its argv elements and
env values (:func:`substitute`) — each argument stays one argument, no shell is involved.

Pure: parses text it is given. Must not read files or run anything.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from edgeweave.errors import InvalidObject
from edgeweave.models.validation import invalid_from_problems, problems_of
from edgeweave.models.workflows import PARAM_REF_RE, Step, Workflow
from edgeweave.models.yamldocs import yaml_documents
from edgeweave.pipelines.cron import Schedule, parse_schedule

MAX_PARAM_VALUE = 4096
SHORT_FORM_KEYS = frozenset({"workflow", "params", "schedule", "steps", "description"})


def parse_workflow_file(text: str, source: str = "<workflow>") -> list[Workflow]:
    """Every workflow in ``text``; raises :class:`InvalidObject` at the first bad one."""
    docs = [d for d, _line in yaml_documents(text, source) if d is not None]
    out = []
    for doc in docs:
        short = isinstance(doc, dict) and "apiVersion" not in doc and "kind" not in doc
        out.append(checked_workflow(workflow_object(doc, source), source, short=short))
    return out


def workflow_object(doc: Any, source: str = "<workflow>") -> dict[str, Any]:
    """The ``Workflow`` object of a short-form document (an object is returned as it is)."""
    if not isinstance(doc, dict):
        raise InvalidObject(f"{source}: a workflow must be a mapping with workflow: {{name}}")
    if "apiVersion" in doc or "kind" in doc:
        return copy.deepcopy(doc)
    unknown = sorted(set(doc) - SHORT_FORM_KEYS)
    if unknown:
        raise InvalidObject(
            f"{source}: unknown field(s) {', '.join(map(str, unknown))}; a workflow file has "
            "workflow, params, schedule, steps and description",
            field=str(unknown[0]),
        )
    head = doc.get("workflow")
    name = head.get("name") if isinstance(head, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidObject(
            f"{source}: a workflow needs workflow.name: workflow: {{name: etl}}",
            field="workflow.name",
        )
    metadata: dict[str, Any] = {"name": name}
    if isinstance(head, dict) and isinstance(head.get("namespace"), str):
        metadata["namespace"] = head["namespace"]
    spec = {k: copy.deepcopy(v) for k, v in doc.items() if k != "workflow"}
    return {"apiVersion": "edgeweave.io/v1", "kind": "Workflow", "metadata": metadata, "spec": spec}


def checked_workflow(
    obj: dict[str, Any], source: str = "<workflow>", *, short: bool = False
) -> Workflow:
    """The model's checks and the schedule's; errors name the field as the file wrote it
    (``short``: the short form, without ``spec.`` in front)."""
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    what = f"{source}: workflow {name!r}" if name else source
    try:
        wf = Workflow.model_validate(obj)
    except ValidationError as e:
        problems = problems_of(e)
        if short:
            problems = [(_short_path(path), msg) for path, msg in problems]
        raise invalid_from_problems(problems, what) from None
    try:
        workflow_schedule(wf)
    except InvalidObject as e:
        field = e.field if short else f"spec.{e.field}"
        message = e.message.removeprefix(f"{e.field}: ")
        raise InvalidObject(f"{what} is invalid: {field}: {message}", field=field) from None
    return wf


def _short_path(path: str) -> str:
    if path.startswith("metadata.name"):
        return "workflow.name"
    return path.removeprefix("spec.").removeprefix("spec")


def workflow_schedule(wf: Workflow) -> Schedule | None:
    """The parsed ``schedule`` (None without one); InvalidObject with field ``schedule``."""
    if wf.spec.schedule is None:
        return None
    return parse_schedule(wf.spec.schedule, field="schedule")


def resolve_params(wf: Workflow, given: Mapping[str, Any]) -> dict[str, str]:
    """The parameters of a run: the declared defaults overlaid with ``given``."""
    declared = wf.spec.params
    for key, value in given.items():
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise InvalidObject(
                f"workflow {wf.metadata.name!r} has no parameter {key!r} (declared: {known})",
                field=f"params.{key}",
            )
        if not isinstance(value, str):
            raise InvalidObject(f"parameter {key!r} must be a string", field=f"params.{key}")
        if len(value) > MAX_PARAM_VALUE:
            raise InvalidObject(
                f"parameter {key!r} is longer than {MAX_PARAM_VALUE} characters",
                field=f"params.{key}",
            )
    out: dict[str, str] = {}
    for key, default in declared.items():
        value = given.get(key, default)
        if value is None:
            raise InvalidObject(
                f"workflow {wf.metadata.name!r} needs parameter {key!r}: give -p {key}=VALUE",
                field=f"params.{key}",
            )
        out[key] = str(value)
    return out


def substitute(text: str, params: Mapping[str, str]) -> str:
    """``{{params.NAME}}`` replaced by the parameter's value (names were checked)."""
    return PARAM_REF_RE.sub(lambda m: params.get(m.group(1), m.group(0)), text)


def step_argv(step: Step, params: Mapping[str, str]) -> list[str]:
    return [substitute(arg, params) for arg in step.cmd]


def step_env(step: Step, params: Mapping[str, str]) -> dict[str, str]:
    """``PARAM_<NAME>`` for every parameter, then the step's ``env`` (substituted)."""
    env = {f"PARAM_{k.upper()}": v for k, v in params.items()}
    env.update({k: substitute(v, params) for k, v in (step.env or {}).items()})
    return env
