"""``Repo`` and ``Pipeline``: data workflows in the Pachyderm shape (COMPAT.md §3).

A Pipeline's ``spec`` is a Pachyderm pipeline spec without its ``pipeline`` block (the name
moves to ``metadata.name``); :func:`pipeline_from_pachyderm` does that move. The fields
COMPAT.md lists are checked strictly; every other Pachyderm field is kept as written. Repo and
pipeline names follow Pachyderm's rule (letters, digits, ``_``, ``-``), not the DNS rule.

Placement is ``"cloud"`` (also the default when absent) or ``{nodeSelector: {...}}`` and/or
``{nodeNames: [...]}``; a repo's location is ``"cloud"`` or ``{node: NAME}``. ``pattern`` holds
exactly one of ``copier``, ``filter``, ``merger`` (free maps read by the pattern operators).
Shape only: this module must not run, schedule or store anything.
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from edgeweave.errors import InvalidObject
from edgeweave.models.base import (
    Argv,
    NonNegativeInt,
    OpenModel,
    PositiveInt,
    Resource,
    StrictModel,
    check_env,
    check_object_name,
    duplicates,
    exactly_one,
    raise_problems,
    str_or_object,
)
from edgeweave.models.meta import ObjectMeta, check_labels
from edgeweave.models.quantities import parse_duration_s
from edgeweave.models.validation import invalid_from_problems, problems_of

PIPELINE_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
PACHYDERM_PROJECT_ANNOTATION = "edgeweave.io/pachyderm-project"
COPIER_COMMIT_ANNOTATION = "edgeweave.io/copier-commit"
"""On a Copier Pipeline: the commit of its input the cloud sends to the selected nodes."""
WORKER_LABEL_KEY, WORKER_LABEL_VALUE = "edgeweave.io/worker", "cloud"
"""The Node label that makes a node a cloud worker: it runs cloud-placed pipelines."""
CLOUD_WORKER_ANNOTATION = "edgeweave.io/cloud-worker"
"""On a cloud-placed Pipeline: the cloud worker node that runs it (absent: the cloud does)."""
WORKER_INPUTS_ANNOTATION = "edgeweave.io/worker-inputs"
"""On a Pipeline a cloud worker runs: JSON ``{"repo@branch": commit}``, the newest commit of
each input branch in the cloud, which the worker fetches."""
INPUT_TYPES = ("pfs", "cross", "union", "join", "group", "cron")


def check_pipeline_name(name: str, what: str = "name") -> str:
    if not PIPELINE_NAME_RE.match(name):
        raise ValueError(
            f"{what} {name!r} is invalid: letters, digits, '_' and '-', starting and ending "
            "with a letter or digit, at most 63 characters"
        )
    return name


class DataMeta(ObjectMeta):
    """Metadata of repos and pipelines: the name follows Pachyderm's rule."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_pipeline_name(v)


class NodePlacement(StrictModel):
    node: str

    @field_validator("node")
    @classmethod
    def _node(cls, v: str) -> str:
        return check_object_name(v, "node name")


def _cloud_only(hint: str) -> AfterValidator:
    def check(value: str) -> str:
        if value != "cloud":
            raise ValueError(f"must be {hint}, got {value!r}")
        return value

    return AfterValidator(check)


_LOCATION_HINT = "'cloud' or {node: NAME}"
RepoLocation = Annotated[
    Annotated[str, _cloud_only(_LOCATION_HINT), Tag("by-name")]
    | Annotated[NodePlacement, Tag("by-object")],
    Discriminator(
        str_or_object,
        custom_error_type="location",
        custom_error_message=f"must be {_LOCATION_HINT}",
    ),
]


class RepoSpec(StrictModel):
    description: str | None = None
    location: RepoLocation | None = None  # absent = cloud
    branches: list[str] | None = None

    @field_validator("branches")
    @classmethod
    def _branches(cls, v: list[str] | None) -> list[str] | None:
        for branch in v or ():
            if not BRANCH_RE.match(branch):
                raise ValueError(f"branch {branch!r} is invalid: letters, digits, '_', '-', '.'")
        return v


class Repo(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Repo"]
    metadata: DataMeta
    spec: RepoSpec | None = None
    status: dict[str, Any] | None = None


class PFSInput(OpenModel):
    repo: str
    glob: str = Field(min_length=1)
    branch: str | None = None  # master when absent
    name: str | None = None  # the repo name when absent
    lazy: bool | None = None
    empty_files: bool | None = None
    join_on: str | None = None
    outer_join: bool | None = None
    group_by: str | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return check_pipeline_name(v, "repo")

    def input_name(self) -> str:
        return self.name or self.repo


class CronInput(OpenModel):
    name: str = Field(min_length=1)
    spec: str = Field(min_length=1)
    overwrite: bool | None = None


class Input(OpenModel):
    pfs: PFSInput | None = None
    cross: list[Input] | None = Field(default=None, min_length=1)
    union: list[Input] | None = Field(default=None, min_length=1)
    join: list[Input] | None = Field(default=None, min_length=1)
    group: list[Input] | None = Field(default=None, min_length=1)
    cron: CronInput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        raise_problems(exactly_one(self, INPUT_TYPES))
        problems: list[tuple[str, str]] = []
        for field, key in (("join", "join_on"), ("group", "group_by")):
            for i, member in enumerate(getattr(self, field) or []):
                if member.pfs is None or getattr(member.pfs, key) is None:
                    problems.append(
                        (f"{field}[{i}]", f"each {field} member is a pfs input with {key}")
                    )
        for field in ("cross", "join", "group"):
            members: list[Input] = getattr(self, field) or []
            names = [",".join(m.names()) for m in members]
            for i in duplicates(names):
                problems.append((f"{field}[{i}]", f"two inputs named {names[i]!r}; set a name"))
        raise_problems(problems)
        return self

    def names(self) -> list[str]:
        """The names this input mounts under /pfs (one for pfs/cron, several for the rest)."""
        if self.pfs is not None:
            return [self.pfs.input_name()]
        if self.cron is not None:
            return [self.cron.name]
        members = self.cross or self.union or self.join or self.group or []
        return [name for m in members for name in m.names()]

    def repos(self) -> list[str]:
        if self.pfs is not None:
            return [self.pfs.repo]
        members = self.cross or self.union or self.join or self.group or []
        return [repo for m in members for repo in m.repos()]


class Transform(OpenModel):
    cmd: Argv
    stdin: list[str] | None = None
    env: dict[str, str] | None = None
    err_cmd: Argv | None = None
    err_stdin: list[str] | None = None
    accept_return_code: list[int] | None = None
    working_dir: str | None = None
    image: str | None = None  # recorded; edgeweave runs cmd as a process on the node

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_env(v) if v is not None else None


class ParallelismSpec(OpenModel):
    constant: NonNegativeInt | None = None


class Placement(StrictModel):
    nodeSelector: dict[str, str] | None = None
    nodeNames: list[str] | None = None

    @field_validator("nodeSelector")
    @classmethod
    def _selector(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return check_labels(v) if v is not None else None

    @field_validator("nodeNames")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or ():
            check_object_name(name, "node name")
        return v

    @model_validator(mode="after")
    def _some(self) -> Placement:
        if not self.nodeSelector and not self.nodeNames:
            raise_problems([("", "give nodeSelector or nodeNames, or write placement: cloud")])
        return self


_PLACEMENT_HINT = "'cloud' or {nodeSelector: {...}} / {nodeNames: [...]}"
PipelinePlacement = Annotated[
    Annotated[str, _cloud_only(_PLACEMENT_HINT), Tag("by-name")]
    | Annotated[Placement, Tag("by-object")],
    Discriminator(
        str_or_object,
        custom_error_type="placement",
        custom_error_message=f"must be {_PLACEMENT_HINT}",
    ),
]


class PatternSpec(StrictModel):
    copier: dict[str, Any] | None = None
    filter: dict[str, Any] | None = None
    merger: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> PatternSpec:
        raise_problems(exactly_one(self, ("copier", "filter", "merger")))
        return self


class PipelineSpec(OpenModel):
    transform: Transform
    input: Input
    parallelism_spec: ParallelismSpec | None = None
    datum_tries: PositiveInt | None = None  # 3 when absent
    datum_timeout: str | None = None
    job_timeout: str | None = None
    reprocess_spec: Literal["until_success", "every_job"] | None = None
    salt: str | None = None
    description: str | None = None
    placement: PipelinePlacement | None = None  # absent = cloud
    pattern: PatternSpec | None = None
    datum_batching: bool | None = None  # one process serves many datums (pipelines/batch.py)

    @field_validator("datum_timeout", "job_timeout")
    @classmethod
    def _durations(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration_s(v)
        return v


class Pipeline(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Pipeline"]
    metadata: DataMeta
    spec: PipelineSpec
    status: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _not_own_input(self) -> Pipeline:
        if self.metadata.name in self.spec.input.repos():
            raise_problems(
                [
                    (
                        "spec.input",
                        f"reads repo {self.metadata.name!r}, which is this pipeline's own output",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _batching(self) -> Pipeline:
        spec = self.spec
        if not spec.datum_batching:
            return self
        if spec.transform.stdin:
            raise_problems(
                [("spec.transform.stdin", "datum_batching feeds the datums on stdin; use cmd only")]
            )
        if spec.pattern is not None and spec.pattern.filter is not None:
            raise_problems([("spec.datum_batching", "a Filter runs one process per datum")])
        return self


def pipeline_from_pachyderm(doc: dict[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
    """A raw Pachyderm spec (``{"pipeline": {"name": ...}, "transform": ..., ...}``) as an
    edgeweave Pipeline object. Raises :class:`InvalidObject` with paths as the user wrote them
    (``transform.cmd``, ``pipeline.name``). An edgeweave object is returned unchanged."""
    if not isinstance(doc, dict):
        raise InvalidObject("a Pachyderm pipeline spec must be a JSON/YAML object")
    if "apiVersion" in doc and "kind" in doc:
        return copy.deepcopy(doc)
    head = doc.get("pipeline")
    name = head.get("name") if isinstance(head, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidObject(
            'a Pachyderm pipeline spec needs pipeline.name: {"pipeline": {"name": "edges"}, ...}',
            field="pipeline.name",
        )
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    project = head.get("project") if isinstance(head, dict) else None
    if isinstance(project, dict) and isinstance(project.get("name"), str):
        metadata["annotations"] = {PACHYDERM_PROJECT_ANNOTATION: project["name"]}
    spec = {k: copy.deepcopy(v) for k, v in doc.items() if k != "pipeline"}
    obj = {"apiVersion": "edgeweave.io/v1", "kind": "Pipeline", "metadata": metadata, "spec": spec}
    try:
        Pipeline.model_validate(obj)
    except ValidationError as e:
        problems = [(_pachyderm_path(path), msg) for path, msg in problems_of(e)]
        raise invalid_from_problems(problems, f"pipeline {name!r}") from None
    return obj


def _pachyderm_path(path: str) -> str:
    if path.startswith("metadata.name"):
        return "pipeline.name"
    return path.removeprefix("spec.").removeprefix("spec")
