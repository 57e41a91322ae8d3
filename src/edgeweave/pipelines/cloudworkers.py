"""Cloud workers' rules: which worker runs a cloud-placed pipeline, what it is told to fetch.

A cloud worker is a Ready node labelled ``edgeweave.io/worker=cloud``. Each cloud-placed
pipeline goes to one of them by **rendezvous hashing**: every (worker, pipeline) pair gets a
score (sha256 of both names) and the pipeline goes to the worker with the highest score. The
choice depends only on the set of workers, so every cloud process agrees on it without
coordination, and a change of that set moves few pipelines: a worker that joins takes only
the pipelines it now scores highest on (about 1/n of them), a worker that leaves gives away
only its own. With no worker the answer is None: the cloud's built-in worker runs it.

The inputs annotation (``edgeweave.io/worker-inputs``) names the newest cloud commit of each
input branch, as JSON ``{"repo@branch": commit}``; :func:`encode_inputs` writes it in one
canonical form (sorted keys, no spaces) so equal inputs give equal strings, and
:func:`decode_inputs` reads it back, ignoring anything malformed (it crosses to nodes).

The cloud (its controller and its hub) and the edge (the worker's pipeline host) both read
these rules. Pure: must not do I/O or know about stores, sessions or nodes' state.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping

from edgeweave.pipelines.datums import TreeKey

_COMMIT = re.compile(r"^[0-9a-f]{32}$")


def _score(worker: str, pipeline: str) -> bytes:
    return hashlib.sha256(f"{worker}\x00{pipeline}".encode()).digest()


def choose_worker(pipeline: str, workers: Iterable[str]) -> str | None:
    """The worker that runs ``pipeline`` (None: no worker, the cloud runs it)."""
    best: tuple[bytes, str] | None = None
    for worker in workers:
        candidate = (_score(worker, pipeline), worker)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best is not None else None


def encode_inputs(heads: Mapping[TreeKey, str]) -> str:
    """``{(repo, branch): commit}`` as the annotation's JSON (branches without a commit left
    out)."""
    return json.dumps(
        {f"{repo}@{branch}": commit for (repo, branch), commit in heads.items() if commit},
        sort_keys=True,
        separators=(",", ":"),
    )


def decode_inputs(text: object) -> dict[str, str]:
    """The annotation's ``{"repo@branch": commit}``; {} when absent or malformed."""
    if not isinstance(text, str):
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {
        str(k): v for k, v in doc.items() if isinstance(v, str) and _COMMIT.match(v) and "@" in k
    }
