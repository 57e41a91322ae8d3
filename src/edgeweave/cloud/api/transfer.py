"""Commits fetched by edge nodes: ``/api/v1/pfs/transfer/{commit}/...`` (the Copier's bytes).

A node that a Copier sends a commit asks the hub for a URL (``commit_url`` over the link; the
hub checks that a Copier placed on the node names that commit) and gets
``/api/v1/pfs/transfer/<commit>?node=&exp=&sig=`` signed with the object URL secret over
``commit:<id>|node|exp`` (a domain apart from object digests, so neither signature opens the
other). With it the node reads:

- ``GET .../transfer/{commit}/manifest``: the commit's :class:`CommitManifest` as JSON;
- ``GET .../transfer/{commit}/chunks/{hex}``: one chunk of that commit, verified bytes —
  a chunk of any other commit is 404, so a URL opens exactly one commit.

The node fetches only the chunks it lacks (``pipelines.transfer``). Admins may call both
without a signature. Must not write anything.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.objects import verify_object_url
from edgeweave.cloud.pipelines import PipelineService
from edgeweave.errors import BadRequest, Forbidden, NotFound

TRANSFER_PATH = "/api/v1/pfs/transfer"
_COMMIT = re.compile(r"^[0-9a-f]{32}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK_SETS_KEPT = 16  # commits whose chunk sets are cached (a fleet fetches the same few)


def commit_subject(commit: str) -> str:
    """What a commit URL's signature covers in place of an object digest."""
    return f"commit:{commit}"


def build_transfer_router(service: PipelineService, url_secret: bytes) -> APIRouter:
    r = APIRouter(tags=["pipelines"])
    chunk_sets: dict[str, frozenset[str]] = {}

    def allow(commit: str, request: Request) -> None:
        if not _COMMIT.match(commit):
            raise BadRequest(f"{commit!r} is not a commit id")
        if request.scope.get("state", {}).get("principal") is not None:
            return  # an admin
        q = request.query_params
        node, exp, sig = q.get("node"), q.get("exp"), q.get("sig")
        if not node or not exp or not sig:
            raise Forbidden("a presigned URL needs node, exp and sig")
        verify_object_url(url_secret, commit_subject(commit), node, exp, sig)

    @r.get(TRANSFER_PATH + "/{commit}/manifest", summary="A commit's manifest (presigned)")
    async def manifest(commit: str, request: Request) -> Response:
        allow(commit, request)
        return json_response((await service.repos.manifest(commit)).as_json())

    @r.get(TRANSFER_PATH + "/{commit}/chunks/{digest}", summary="One chunk of a commit")
    async def chunk(commit: str, digest: str, request: Request) -> Response:
        allow(commit, request)
        if not _HEX.match(digest):
            raise BadRequest(f"{digest!r} is not a chunk digest")
        chunks = chunk_sets.get(commit)
        if chunks is None:
            chunks = frozenset(await service.repos.chunk_digests(commit))
            if len(chunk_sets) >= CHUNK_SETS_KEPT:
                chunk_sets.pop(next(iter(chunk_sets)))
            chunk_sets[commit] = chunks
        if digest not in chunks:
            raise NotFound(f"commit {commit} has no chunk {digest[:12]}")
        data = await service.repos.read_chunk(digest)
        return Response(data, media_type="application/octet-stream")

    return r
