"""Starting and waiting for workflow runs over HTTP (``/api/v1/pps/...``; docs/api.md).

- ``POST /api/v1/pps/workflows/{name}/runs?namespace=`` with ``{"params": {"key": "value"}}``
  (the body may be empty): starts a run; answers 201 with the ``WorkflowRun`` object. A
  parameter the workflow does not declare, or a required one left out, is a 422 naming it.
- ``GET /api/v1/pps/workflowruns/{run}/wait?namespace=&timeoutSeconds=``: answers
  ``{"done": true, "run": {...}}`` once the run has ended, or ``{"done": false, "run": ...}``
  at the timeout (default 60 s, at most 3600).

Workflows and runs themselves are ordinary objects (``/apis/edgeweave.io/v1/.../workflows``,
``.../workflowruns``, the latter read-only). Admin only.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.api.pps import _seconds
from edgeweave.cloud.pipelines.workflows import RUN, Workflows
from edgeweave.errors import BadRequest
from edgeweave.pipelines.dag import RUN_DONE

WORKFLOWS = "/api/v1/pps/workflows"
RUNS = "/api/v1/pps/workflowruns"


def build_workflows_router(workflows: Workflows) -> APIRouter:
    r = APIRouter(tags=["workflows"])

    @r.post(WORKFLOWS + "/{name}/runs", summary="Start a run of a workflow", status_code=201)
    async def start_run(request: Request, name: str) -> Response:
        require_admin(request)
        namespace = request.query_params.get("namespace") or "default"
        raw = await request.body()  # bounded by the BodyLimit middleware
        body = {}
        if raw.strip():
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise BadRequest(f"request body is not valid JSON: {e}") from e
        params = body.get("params") if isinstance(body, dict) else None
        if not isinstance(params, dict | None):
            raise BadRequest('"params" must be an object of name: value strings')
        run = await workflows.start_run(namespace, name, params or {})
        return json_response(run, status_code=201)

    @r.get(RUNS + "/{run}/wait", summary="Wait until a workflow run has ended")
    async def wait_run(request: Request, run: str) -> Response:
        require_admin(request)
        namespace = request.query_params.get("namespace") or "default"
        try:
            async with asyncio.timeout(_seconds(request)):
                obj = await workflows.wait_run(namespace, run)
        except TimeoutError:
            obj = await workflows.store.get(RUN, namespace, run)
        done = (obj.get("status") or {}).get("state") in RUN_DONE
        return json_response({"done": done, "run": obj})

    return r
