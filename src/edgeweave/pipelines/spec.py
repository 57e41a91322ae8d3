"""Reading Pachyderm pipeline spec files (COMPAT.md §3) into checked ``Pipeline`` models.

A spec file is JSON when its first non-space character is ``{`` — then it may hold several
objects one after the other, as ``pachctl create pipeline -f`` accepts — else YAML, several
documents separated by ``---``. Each document is a Pachyderm spec (``pipeline.name``,
``transform``, ``input``, ...) or an edgeweave ``Pipeline`` object; both come out as
:class:`~edgeweave.models.pipelines.Pipeline` (the model does the field checks).

On top of the model this module checks what needs the engine: every ``glob`` compiles, every
``join_on``/``group_by`` reads only capture groups its glob has, and every ``cron`` input has a
schedule that parses and matches and a name that makes a valid repo name. Every error is an
:class:`InvalidObject` whose message starts with ``file:line`` and whose ``field`` is the path
as the user wrote it (``input.cross[1].pfs.glob``).

:func:`pipeline_version` is the digest every datum hash includes: the ``transform`` and the
``salt`` (and ``pattern`` and ``datum_batching`` when set). Changing any re-runs every datum;
changing anything else (parallelism, placement, description, timeouts) does not.

A ``cron`` input reads the repo ``<pipeline>_<name>`` (:func:`cron_repo`) with glob ``/*``:
:attr:`PipelineDoc.input` is the input with each cron input written that way, which is what the
engine plans on; ``crontick.py`` commits the ticks.

Pure: parses text it is given. This module must not read files or talk to anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from edgeweave.errors import InvalidObject
from edgeweave.models.pipelines import (
    CronInput,
    Input,
    PFSInput,
    Pipeline,
    PipelineSpec,
    check_pipeline_name,
    pipeline_from_pachyderm,
)
from edgeweave.models.quantities import parse_duration_s
from edgeweave.models.validation import invalid_object
from edgeweave.models.yamldocs import yaml_documents
from edgeweave.pipelines.cron import parse_schedule
from edgeweave.pipelines.glob import Glob, template_groups

DEFAULT_DATUM_TRIES = 3


@dataclass(frozen=True)
class PipelineDoc:
    """One checked pipeline and where it was written (``file:line``)."""

    pipeline: Pipeline
    where: str

    @property
    def name(self) -> str:
        return self.pipeline.metadata.name

    @property
    def version(self) -> str:
        return pipeline_version(self.pipeline.spec)

    @cached_property
    def input(self) -> Input:
        """The input the engine plans on: each ``cron`` input as the pfs input of its repo."""
        return engine_input(self.pipeline.spec.input, self.name)

    @property
    def crons(self) -> list[CronInput]:
        """The pipeline's cron inputs, in input order."""
        return list(cron_inputs(self.pipeline.spec.input))


@dataclass(frozen=True)
class RunSettings:
    """How a pipeline's datums run, with Pachyderm's defaults filled in."""

    datum_tries: int
    datum_timeout_s: float | None
    job_timeout_s: float | None
    every_job: bool  # reprocess_spec: every_job
    parallelism: int
    drop_codes: tuple[int, ...] | None = None  # a Filter: exit codes that drop the datum
    batching: bool = False  # datum_batching: one process serves many datums (batch.py)


def run_settings(spec: PipelineSpec) -> RunSettings:
    constant = spec.parallelism_spec.constant if spec.parallelism_spec else None
    return RunSettings(
        datum_tries=spec.datum_tries or DEFAULT_DATUM_TRIES,
        datum_timeout_s=parse_duration_s(spec.datum_timeout) if spec.datum_timeout else None,
        job_timeout_s=parse_duration_s(spec.job_timeout) if spec.job_timeout else None,
        every_job=spec.reprocess_spec == "every_job",
        parallelism=constant or 1,
        drop_codes=filter_drop_codes(spec),
        batching=bool(spec.datum_batching),
    )


def filter_drop_codes(spec: PipelineSpec) -> tuple[int, ...] | None:
    """A Filter pipeline's drop codes (``pattern.filter.dropCodes``, default ``[1]``): its
    ``cmd`` is the predicate; exit 0 passes the datum's files unchanged, a drop code drops
    them. None for other pipelines; InvalidObject naming the field when malformed."""
    return check_filter(spec.pattern.filter if spec.pattern is not None else None)


def check_filter(settings: Any) -> tuple[int, ...] | None:
    """``pattern.filter`` as written (see :func:`filter_drop_codes`)."""
    if settings is None:
        return None
    if not isinstance(settings, dict):
        raise InvalidObject("pattern.filter: must be an object", field="pattern.filter")
    unknown = sorted(set(settings) - {"dropCodes"})
    if unknown:
        raise InvalidObject(
            f"pattern.filter: unknown field(s) {', '.join(unknown)}; a filter takes dropCodes",
            field="pattern.filter",
        )
    codes = settings.get("dropCodes", [1])
    if (
        not isinstance(codes, list)
        or not codes
        or any(type(c) is not int or not 1 <= c <= 255 for c in codes)
    ):
        raise InvalidObject(
            "pattern.filter.dropCodes: must be a non-empty list of exit codes 1..255 "
            "(0 means pass)",
            field="pattern.filter.dropCodes",
        )
    return tuple(codes)


def pipeline_version(spec: PipelineSpec) -> str:
    """``sha256:`` of the canonical JSON of the transform, the salt and the pattern (a
    Filter's predicate is its transform plus its drop codes)."""
    doc: dict[str, Any] = {"transform": spec.transform.model_dump(mode="json", exclude_none=True)}
    if spec.salt:
        doc["salt"] = spec.salt
    if spec.pattern is not None:
        doc["pattern"] = spec.pattern.model_dump(mode="json", exclude_none=True)
    if spec.datum_batching:  # the same cmd speaks another protocol
        doc["datum_batching"] = True
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def parse_pipeline_specs(
    text: str, source: str = "<spec>", *, namespace: str | None = None
) -> list[PipelineDoc]:
    """Every pipeline in ``text``; raises :class:`InvalidObject` at the first bad one."""
    out: list[PipelineDoc] = []
    for doc, line in _documents(text, source):
        where = f"{source}:{line}"
        try:
            obj = pipeline_from_pachyderm(doc, namespace=namespace)
            pipeline = Pipeline.model_validate(obj)
        except ValidationError as e:  # an edgeweave object passed through unchecked
            raise _located(invalid_object(e, "pipeline"), where) from None
        except InvalidObject as e:
            raise _located(e, where) from None
        try:
            check_input(pipeline.spec.input, pipeline=pipeline.metadata.name)
            filter_drop_codes(pipeline.spec)
        except InvalidObject as e:
            raise _located(e, where, f"pipeline {pipeline.metadata.name!r} is invalid: ") from None
        out.append(PipelineDoc(pipeline, where))
    return out


def stored_pipeline_doc(obj: dict[str, Any]) -> PipelineDoc:
    """A stored ``Pipeline`` object as the engine reads it; InvalidObject naming the field
    (pydantic's ValidationError, a ValueError, when the object was never checked)."""
    meta = obj.get("metadata") or {}
    pipeline = Pipeline.model_validate(obj)
    check_input(pipeline.spec.input, pipeline=pipeline.metadata.name)
    filter_drop_codes(pipeline.spec)
    return PipelineDoc(pipeline, f"Pipeline {meta.get('namespace') or ''}/{meta.get('name')}")


def check_input(input: Input, path: str = "input", *, pipeline: str = "") -> None:
    """Globs compile, templates read existing capture groups, cron schedules parse and
    match, cron repos (``<pipeline>_<name>``) have valid names; errors name the field."""
    if input.cron is not None:
        _check_cron(input.cron, f"{path}.cron", pipeline)
        return
    if input.pfs is not None:
        pfs = input.pfs
        try:
            glob = Glob(pfs.glob)
        except InvalidObject as e:
            raise InvalidObject(f"{path}.pfs.glob: {e.message}", field=f"{path}.pfs.glob") from None
        for key in ("join_on", "group_by"):
            template = getattr(pfs, key)
            if template is None:
                continue
            missing = [n for n in template_groups(template) if not 0 < n <= glob.group_count]
            if missing:
                raise InvalidObject(
                    f"{path}.pfs.{key}: {template!r} reads ${missing[0]} but glob "
                    f"{pfs.glob!r} has {glob.group_count} capture group(s); "
                    "put parentheses around the part to capture, e.g. /(*).txt",
                    field=f"{path}.pfs.{key}",
                )
        return
    for kind in ("cross", "union", "join", "group"):
        for i, member in enumerate(getattr(input, kind) or []):
            check_input(member, f"{path}.{kind}[{i}]", pipeline=pipeline)


def _check_cron(cron: CronInput, path: str, pipeline: str) -> None:
    schedule = parse_schedule(cron.spec, field=f"{path}.spec")
    try:
        schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    except InvalidObject as e:
        raise InvalidObject(f"{path}.spec: {e.message}", field=f"{path}.spec") from None
    if pipeline:
        try:
            check_pipeline_name(cron_repo(pipeline, cron.name), "repo")
        except ValueError:
            raise InvalidObject(
                f"{path}.name: {cron.name!r} makes the input repo "
                f"{cron_repo(pipeline, cron.name)!r}, not a valid repo name (letters, digits, "
                "'_' and '-', starting and ending with a letter or digit, at most 63 "
                "characters in all)",
                field=f"{path}.name",
            ) from None


def cron_repo(pipeline: str, name: str) -> str:
    """The repo a pipeline's cron input ``name`` ticks into (Pachyderm's naming)."""
    return f"{pipeline}_{name}"


def cron_inputs(input: Input) -> Iterator[CronInput]:
    if input.cron is not None:
        yield input.cron
    for member in input.cross or input.union or input.join or input.group or []:
        yield from cron_inputs(member)


def engine_input(input: Input, pipeline: str) -> Input:
    """``input`` with each cron input replaced by a pfs input of its repo, glob ``/*``, named
    as the cron input."""
    if input.cron is not None:
        repo = cron_repo(pipeline, input.cron.name)
        return Input(pfs=PFSInput(repo=repo, glob="/*", name=input.cron.name))
    update = {
        kind: [engine_input(m, pipeline) for m in members]
        for kind in ("cross", "union", "join", "group")
        if (members := getattr(input, kind)) is not None
    }
    return input.model_copy(update=update) if update else input


def _located(err: InvalidObject, where: str, prefix: str = "") -> InvalidObject:
    return InvalidObject(f"{where}: {prefix}{err.message}", field=err.field, errors=err.errors)


def _documents(text: str, source: str) -> Iterator[tuple[Any, int]]:
    """``(document, first line)`` for each document; JSON objects or YAML documents."""
    if text.lstrip().startswith("{"):
        yield from _json_documents(text, source)
    else:
        yield from _yaml_documents(text, source)


def _json_documents(text: str, source: str) -> Iterator[tuple[Any, int]]:
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InvalidObject(f"{source}:{e.lineno}: {e.msg}") from None
        if not isinstance(value, dict):
            raise InvalidObject(f"{source}:{line}: a pipeline spec must be a JSON object")
        yield value, line


def _yaml_documents(text: str, source: str) -> Iterator[tuple[Any, int]]:
    for value, line in yaml_documents(text, source):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidObject(f"{source}:{line}: a pipeline spec must be a mapping")
        yield value, line
