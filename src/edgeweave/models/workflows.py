"""``Workflow`` and ``WorkflowRun``: task DAGs in the Airflow/Makeflow shape (DESIGN.md §6).

A Workflow's ``spec`` holds ``params`` (name → default, ``null`` when a run must give it),
an optional ``schedule`` (cron text, checked by the engine: ``pipelines/cron.py``) and
``steps``: each a ``name``, a ``cmd`` argv list, ``depends_on`` (step names), ``retries``,
``retry_backoff`` (``initial``, ``factor``, ``max``), ``timeout`` and ``env``. The model
refuses, each with the field's path: duplicate step names, a dependency on a step that does
not exist or on the step itself, a cycle (named, ``a -> b -> a``), a backoff whose durations
do not parse or whose ``max`` is below ``initial``, and ``{{params.NAME}}`` naming an
undeclared parameter.

A ``WorkflowRun`` is written by the cloud only (one run of a workflow: its parameters, and in
``status`` the state of the run and of every step). Names follow Pachyderm's rule, like
pipelines: a workflow's steps write to the repo of the workflow's name.

Shape only: this module must not run, schedule or store anything.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edgeweave.models.base import (
    Argv,
    NonNegativeInt,
    Resource,
    StrictModel,
    check_env,
    duplicates,
    raise_problems,
)
from edgeweave.models.pipelines import DataMeta, check_pipeline_name
from edgeweave.models.quantities import parse_duration_s

MAX_WORKFLOW_NAME = 40  # a run is named <workflow>-<suffix> within the 63 characters names get
MAX_STEPS = 1000
MAX_RETRIES = 100
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PARAM_REF_RE = re.compile(r"\{\{\s*params\.([^}\s]*)\s*\}\}")
RESERVED_STEP_NAMES = frozenset({"out"})  # /pfs/out is the step's own output
WORKFLOW_LABEL = "edgeweave.io/workflow"


class Backoff(StrictModel):
    """Delay before try k+1 (k ≥ 1): ``min(max, initial * factor**(k-1))``."""

    initial: str = "1s"
    factor: float | int = 2
    max: str = "60s"

    @field_validator("initial", "max")
    @classmethod
    def _duration(cls, v: str) -> str:
        if parse_duration_s(v) <= 0:
            raise ValueError(f"duration {v!r} must be above 0")
        return v

    @field_validator("factor")
    @classmethod
    def _factor(cls, v: float) -> float:
        if not 1 <= v <= 100:
            raise ValueError(f"factor {v!r} must be between 1 and 100")
        return v

    @model_validator(mode="after")
    def _order(self) -> Backoff:
        if parse_duration_s(self.max) < parse_duration_s(self.initial):
            raise_problems([("max", f"{self.max!r} is below initial {self.initial!r}")])
        return self

    def delay_s(self, tries_done: int) -> float:
        """The wait after ``tries_done`` failed tries, before the next one."""
        initial, top = parse_duration_s(self.initial), parse_duration_s(self.max)
        return float(min(top, initial * self.factor ** max(0, tries_done - 1)))


class Step(StrictModel):
    name: str
    cmd: Argv
    depends_on: list[str] = Field(default_factory=list)
    retries: NonNegativeInt = 0
    retry_backoff: Backoff = Field(default_factory=Backoff)
    timeout: str | None = None
    env: dict[str, str] | None = None
    placement: Literal["cloud"] | None = None  # steps run on the cloud's pipeline worker

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        check_pipeline_name(v, "step name")
        if v in RESERVED_STEP_NAMES:
            raise ValueError(f"step name {v!r} is reserved (/pfs/out is a step's own output)")
        return v

    @field_validator("retries")
    @classmethod
    def _retries(cls, v: int) -> int:
        if v > MAX_RETRIES:
            raise ValueError(f"at most {MAX_RETRIES} retries, got {v}")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str | None) -> str | None:
        if v is not None and parse_duration_s(v) <= 0:
            raise ValueError(f"timeout {v!r} must be above 0")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_env(v) if v is not None else None

    @property
    def tries(self) -> int:
        return self.retries + 1

    @property
    def timeout_s(self) -> float | None:
        return parse_duration_s(self.timeout) if self.timeout else None


class WorkflowSpec(StrictModel):
    params: dict[str, str | None] = Field(default_factory=dict)
    schedule: str | None = None
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    description: str | None = None

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        for key in v:
            if not PARAM_NAME_RE.match(key):
                raise ValueError(
                    f"parameter name {key!r} is invalid: letters, digits and '_', not starting "
                    "with a digit (it becomes the variable PARAM_<NAME>)"
                )
        return v

    @model_validator(mode="after")
    def _graph(self) -> WorkflowSpec:
        names = [s.name for s in self.steps]
        problems = [
            (f"steps[{i}].name", f"duplicate step name {names[i]!r}") for i in duplicates(names)
        ]
        known = set(names)
        for i, step in enumerate(self.steps):
            for j, dep in enumerate(step.depends_on):
                where = f"steps[{i}].depends_on[{j}]"
                if dep == step.name:
                    problems.append((where, f"step {step.name!r} depends on itself"))
                elif dep not in known:
                    problems.append((where, f"unknown step {dep!r}; steps are {', '.join(names)}"))
            for j in duplicates(step.depends_on):
                problems.append((f"steps[{i}].depends_on[{j}]", f"{step.depends_on[j]!r} twice"))
            problems.extend(self._param_refs(i, step))
        raise_problems(problems)
        cycle = find_cycle({s.name: s.depends_on for s in self.steps})
        if cycle:
            i = names.index(cycle[0])
            raise_problems(
                [
                    (
                        f"steps[{i}].depends_on",
                        "cycle " + " -> ".join(cycle) + " (each depends on the next)",
                    )
                ]
            )
        return self

    def _param_refs(self, i: int, step: Step) -> list[tuple[str, str]]:
        problems = []
        fields = [(f"cmd[{j}]", arg) for j, arg in enumerate(step.cmd)]
        fields += [(f"env.{k}", v) for k, v in (step.env or {}).items()]
        for path, text in fields:
            for ref in PARAM_REF_RE.findall(text):
                if ref not in self.params:
                    declared = ", ".join(self.params) or "none"
                    problems.append(
                        (
                            f"steps[{i}].{path}",
                            f"{{{{params.{ref}}}}} is not a declared "
                            f"parameter (declared: {declared})",
                        )
                    )
        return problems

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


def find_cycle(deps: dict[str, list[str]]) -> list[str]:
    """A cycle of the graph ``step → steps it depends on``, as ``[a, b, ..., a]`` (each
    depends on the next); [] when there is none. Iterative: a long chain is fine."""
    order = {name: i for i, name in enumerate(deps)}
    remaining = {n: {d for d in ds if d in deps} for n, ds in deps.items()}
    dependents: dict[str, list[str]] = {n: [] for n in deps}
    for n, ds in remaining.items():
        for d in ds:
            dependents[d].append(n)
    ready = [n for n, ds in remaining.items() if not ds]
    while ready:
        n = ready.pop()
        del remaining[n]
        for m in dependents[n]:
            remaining[m].discard(n)
            if not remaining[m]:
                ready.append(m)
    if not remaining:
        return []
    # every step left waits on another step left: walking its dependencies must loop
    node = min(remaining, key=order.__getitem__)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(remaining[node], key=order.__getitem__)
    return [*path[path.index(node) :], node]


class WorkflowMeta(DataMeta):
    @field_validator("name")
    @classmethod
    def _short(cls, v: str) -> str:
        if len(v) > MAX_WORKFLOW_NAME:
            raise ValueError(f"workflow name {v!r} is longer than {MAX_WORKFLOW_NAME} characters")
        return v


class Workflow(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Workflow"]
    metadata: WorkflowMeta
    spec: WorkflowSpec
    status: dict[str, Any] | None = None


class WorkflowRunSpec(StrictModel):
    workflow: str
    params: dict[str, str] = Field(default_factory=dict)
    trigger: Literal["manual", "schedule"] = "manual"
    generation: int = 0  # of the Workflow the run started with


class WorkflowRun(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["WorkflowRun"]
    metadata: DataMeta
    spec: WorkflowRunSpec
    status: dict[str, Any] | None = None
