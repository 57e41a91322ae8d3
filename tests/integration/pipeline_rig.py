"""Small shared parts of the pipeline tests: a pipeline spec from a few fields, and the live
processes of a process group (to prove user code was stopped)."""

from __future__ import annotations

import json
from typing import Any

from edgeweave.pipelines.spec import PipelineDoc, parse_pipeline_specs
from procs import live_processes


def pipeline_doc(name: str, repo: str, cmd: list[str], **extra: Any) -> PipelineDoc:
    """A parsed spec: ``cmd`` over each top-level entry (``/*``) of ``repo``, plus ``extra``."""
    doc = {
        "pipeline": {"name": name},
        "transform": {"cmd": cmd},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        **extra,
    }
    return parse_pipeline_specs(json.dumps(doc))[0]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    return [proc.pid for proc in live_processes() if proc.pgid == pgid]
