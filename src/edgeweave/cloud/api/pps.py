"""Jobs, datums, job logs and waiting over HTTP (``/api/v1/pps/...``; docs/api.md).

- ``GET /api/v1/pps/jobs?pipeline=&limit=``: jobs, newest first;
- ``GET /api/v1/pps/jobs/{job}``: one job (an id or an unambiguous prefix);
- ``GET /api/v1/pps/jobs/{job}/datums?limit=``: the datums that ran in it, then those skipped;
- ``GET /api/v1/pps/jobs/{job}/logs?datum=``: the datums' logs as text (streamed);
- ``GET /api/v1/pps/wait?pipeline=A,B&namespace=&timeoutSeconds=``: answers
  ``{"settled": true}`` once the pipelines as stored now (all when none is named) and those
  upstream of them have processed every input commit, or ``{"settled": false}`` at the
  timeout (default 60 s, at most 3600).

Pipelines themselves are ordinary objects (``/apis/edgeweave.io/v1/.../pipelines``). Admin
only. Read-only: nothing here writes.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from edgeweave.cloud.api.bodies import int_param, json_response
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.pipelines import PipelineService
from edgeweave.errors import BadRequest

JOBS = "/api/v1/pps/jobs"
MAX_LIMIT = 100_000
DEFAULT_WAIT_S = 60.0
MAX_WAIT_S = 3600.0


def _seconds(request: Request) -> float:
    raw = request.query_params.get("timeoutSeconds")
    if not raw:
        return DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError as e:
        raise BadRequest(f"timeoutSeconds must be a number, got {raw[:40]!r}") from e
    if not 0 <= value <= MAX_WAIT_S:
        raise BadRequest(f"timeoutSeconds must be between 0 and {MAX_WAIT_S:g}")
    return value


def build_pps_router(service: PipelineService) -> APIRouter:
    r = APIRouter(tags=["pipelines"])

    @r.get(JOBS, summary="Jobs, newest first (?pipeline=, ?limit=)")
    async def list_jobs(request: Request) -> Response:
        require_admin(request)
        pipeline = request.query_params.get("pipeline") or None
        jobs = await service.jobs.list_jobs(
            pipeline, int_param(request, "limit", 100, 1, MAX_LIMIT)
        )
        return json_response({"kind": "JobList", "items": [j.as_json() for j in jobs]})

    @r.get(JOBS + "/{job}", summary="A job (its id or an unambiguous prefix)")
    async def inspect_job(request: Request, job: str) -> Response:
        require_admin(request)
        return json_response((await service.jobs.job(job)).as_json())

    @r.get(JOBS + "/{job}/datums", summary="The datums of a job: those that ran, then skipped")
    async def list_datums(request: Request, job: str) -> Response:
        require_admin(request)
        info, datums = await service.datums(job, int_param(request, "limit", 1000, 1, MAX_LIMIT))
        items = [d.as_json() for d in datums]
        return json_response({"kind": "DatumList", "job": info.id, "items": items})

    @r.get(JOBS + "/{job}/logs", summary="The logs of a job's datums (?datum=)")
    async def job_logs(request: Request, job: str) -> Response:
        require_admin(request)
        chunks = await service.job_logs(job, request.query_params.get("datum") or None)
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")

    @r.get("/api/v1/pps/wait", summary="Wait until pipelines have processed their inputs")
    async def wait(request: Request) -> Response:
        require_admin(request)
        given = request.query_params.getlist("pipeline")
        names = [n for value in given for n in value.split(",") if n]
        namespace = request.query_params.get("namespace") or "default"
        try:
            async with asyncio.timeout(_seconds(request)):
                await service.wait(names or None, namespace)
        except TimeoutError:
            return json_response({"settled": False})
        return json_response({"settled": True})

    return r
