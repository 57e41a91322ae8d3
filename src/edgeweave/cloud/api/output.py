"""Output commits pushed by cloud workers: ``/api/v1/pfs/output/{namespace}/{name}/...``.

A node running a cloud-placed pipeline as a cloud worker asks the hub for a URL
(``output_url`` over the link; the hub checks that the pipeline is handed to the node) and
gets ``/api/v1/pfs/output/<ns>/<name>?node=&exp=&sig=``, signed over
``output:<ns>/<name>|node|exp`` (the node's name comes from the signature). With it, after each
successful job, the node calls the Merger's transport:

- ``POST .../missing`` with the output commit's manifest: ``{"missing": [hex...]}``;
- ``PUT .../chunks/{hex}`` with each missing chunk (verified, recorded at once);
- ``POST .../commit`` with the manifest: the commit is imported onto ``master`` of the
  pipeline's output repo with the job's provenance, and the cloud pipelines reading that repo
  wake (:meth:`~edgeweave.cloud.pipelines.PipelineService.accept_output`); ``{"imported"}``,
  false for a replay. Refused (409) when the pipeline is not handed to that node now.

Must not decide which worker runs a pipeline (``cloud.pipelines.workers`` does).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.api.merge import missing_chunks, read_manifest, receive_chunk, signed_node
from edgeweave.cloud.pipelines import PipelineService

OUTPUT_PATH = "/api/v1/pfs/output"


def output_subject(namespace: str, name: str) -> str:
    return f"output:{namespace}/{name}"


def build_output_router(service: PipelineService, url_secret: bytes) -> APIRouter:
    r = APIRouter(tags=["pipelines"])
    base = OUTPUT_PATH + "/{namespace}/{name}"

    def node_of(namespace: str, name: str, request: Request) -> str:
        return signed_node(request, url_secret, output_subject(namespace, name), "output")

    @r.post(base + "/missing", summary="Which chunks of an output commit the cloud lacks (node)")
    async def missing(namespace: str, name: str, request: Request) -> Response:
        node_of(namespace, name, request)
        return await missing_chunks(service, await read_manifest(request))

    @r.put(base + "/chunks/{digest}", summary="Push one chunk of an output commit (node)")
    async def chunk(namespace: str, name: str, digest: str, request: Request) -> Response:
        node_of(namespace, name, request)
        return await receive_chunk(service, digest, request)

    @r.post(base + "/commit", summary="Import a cloud worker's output commit (node)")
    async def commit(namespace: str, name: str, request: Request) -> Response:
        node = node_of(namespace, name, request)
        manifest = await read_manifest(request)
        imported = await service.accept_output(namespace, name, node, manifest)
        return json_response({"imported": imported, "commit": manifest.info.id})

    return r
