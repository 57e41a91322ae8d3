"""Commits delivered by edge nodes to a Merger: ``/api/v1/pfs/merge/{namespace}/{name}/...``.

A node asks the hub for a URL (``merge_url`` over the link; the hub checks that the pipeline
is a Merger placed on the node) and gets ``/api/v1/pfs/merge/<ns>/<name>?node=&exp=&sig=``,
signed over ``merge:<ns>/<name>|node|exp`` (the node's name comes from the signature, never
from a body). With it the node calls:

- ``POST .../missing`` with the commit's manifest (JSON, checked): ``{"missing": [hex...]}``,
  the chunks the cloud lacks;
- ``PUT .../chunks/{hex}`` with a chunk's bytes (at most 2 MiB; refused unless they hash to
  ``hex``; recorded at once, so a delivery resumes);
- ``POST .../commit`` with the manifest: the commit is imported on branch ``<node>`` of repo
  ``<name>`` (:class:`~edgeweave.cloud.pipelines.merger.Mergers`); ``{"imported",
  "complete", "merger"}``. A replay answers ``imported: false``.

Must not decide completion or placement (the Merger service does).
"""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.objects import verify_object_url
from edgeweave.cloud.pipelines import PipelineService
from edgeweave.errors import BadRequest, Forbidden, PayloadTooLarge
from edgeweave.pipelines.transfer import CommitManifest, manifest_from_json

MERGE_PATH = "/api/v1/pfs/merge"
MAX_CHUNK_BYTES = 2 * 1024 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]{64}$")


def merge_subject(namespace: str, name: str) -> str:
    return f"merge:{namespace}/{name}"


async def read_manifest(request: Request) -> CommitManifest:
    """The request body as a checked manifest (at most ``MAX_MANIFEST_BYTES``)."""
    body = bytearray()
    async for block in request.stream():
        body.extend(block)
        if len(body) > MAX_MANIFEST_BYTES:
            raise PayloadTooLarge(f"a manifest is at most {MAX_MANIFEST_BYTES} bytes")
    try:
        return manifest_from_json(json.loads(body))
    except ValueError as e:
        raise BadRequest(f"the body is not a JSON manifest: {e}") from e


async def missing_chunks(service: PipelineService, manifest: CommitManifest) -> Response:
    """``{"missing": [hex...]}``: the manifest's chunks the cloud lacks."""
    wanted = manifest.chunk_digests()
    held = await service.repos.held_chunks(wanted)
    return json_response({"missing": [d for d in wanted if d not in held]})


async def receive_chunk(service: PipelineService, digest: str, request: Request) -> Response:
    """Store the body as chunk ``digest`` (refused unless it hashes to it)."""
    if not _HEX.match(digest):
        raise BadRequest(f"{digest!r} is not a chunk digest")
    body = bytearray()
    async for block in request.stream():
        body.extend(block)
        if len(body) > MAX_CHUNK_BYTES:
            raise PayloadTooLarge(f"a chunk is at most {MAX_CHUNK_BYTES} bytes")
    stored = await service.repos.receive_chunks([(digest, bytes(body))])
    return json_response({"digest": digest, "size": stored}, 201)


def signed_node(request: Request, url_secret: bytes, subject: str, what: str) -> str:
    """The node a signed ``what`` URL (``merge``, ``output``) was issued to, checked against
    ``subject``; Forbidden when the signature is missing, wrong or expired."""
    q = request.query_params
    node, exp, sig = q.get("node"), q.get("exp"), q.get("sig")
    if not node or not exp or not sig:
        raise Forbidden(f"a {what} URL needs node, exp and sig (ask the hub: {what}_url)")
    verify_object_url(url_secret, subject, node, exp, sig)
    return node


def build_merge_router(service: PipelineService, url_secret: bytes) -> APIRouter:
    r = APIRouter(tags=["pipelines"])
    base = MERGE_PATH + "/{namespace}/{name}"

    def node_of(namespace: str, name: str, request: Request) -> str:
        return signed_node(request, url_secret, merge_subject(namespace, name), "merge")

    @r.post(base + "/missing", summary="Which chunks of a commit the cloud lacks (node)")
    async def missing(namespace: str, name: str, request: Request) -> Response:
        node_of(namespace, name, request)
        await service.mergers.merger(namespace, name)
        return await missing_chunks(service, await read_manifest(request))

    @r.put(base + "/chunks/{digest}", summary="Deliver one chunk (node)")
    async def chunk(namespace: str, name: str, digest: str, request: Request) -> Response:
        node_of(namespace, name, request)
        return await receive_chunk(service, digest, request)

    @r.post(base + "/commit", summary="Import a delivered commit on the node's branch (node)")
    async def commit(namespace: str, name: str, request: Request) -> Response:
        node = node_of(namespace, name, request)
        manifest = await read_manifest(request)
        return json_response(await service.mergers.deliver(namespace, name, node, manifest))

    return r
