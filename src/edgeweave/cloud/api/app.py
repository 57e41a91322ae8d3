"""Builds the ASGI application: routes, error mapping and the guards around them."""

from __future__ import annotations

import platform
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.api.deps import ApiDeps
from edgeweave.cloud.api.events import EventsDeps, build_events_router
from edgeweave.cloud.api.guards import BearerAuth, BodyLimit, TokenCheck
from edgeweave.cloud.api.join import JoinDeps, build_join_router
from edgeweave.cloud.api.logs import LogSource, build_logs_router
from edgeweave.cloud.api.merge import MAX_MANIFEST_BYTES, MERGE_PATH, build_merge_router
from edgeweave.cloud.api.objects import ObjectDeps, build_objects_router
from edgeweave.cloud.api.output import OUTPUT_PATH, build_output_router
from edgeweave.cloud.api.pfs import FILES_PREFIX, build_pfs_router
from edgeweave.cloud.api.pps import build_pps_router
from edgeweave.cloud.api.resources import build_router
from edgeweave.cloud.api.status import error_response, internal_error_response, status_response
from edgeweave.cloud.api.transfer import build_transfer_router
from edgeweave.cloud.api.twins import TwinDeps, build_twins_router
from edgeweave.cloud.api.workflows import build_workflows_router
from edgeweave.cloud.pipelines import PipelineService
from edgeweave.cloud.pipelines.workflows import Workflows
from edgeweave.errors import EdgeweaveError
from edgeweave.models import registry

_HTTP_REASONS = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest"}


def discovery_document() -> dict[str, Any]:
    kinds = []
    for info in registry.all_kinds():
        kinds.append(
            {
                "kind": info.kind,
                "group": info.group,
                "version": info.version,
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "namespaced": info.namespaced,
                "columns": [{"name": n, "jsonPath": p} for n, p in info.columns],
                "wideColumns": [{"name": n, "jsonPath": p} for n, p in info.wide_columns],
            }
        )
    return {"kinds": kinds}


def create_app(
    deps: ApiDeps,
    token_check: TokenCheck,
    *,
    join: JoinDeps | None = None,
    objects: ObjectDeps | None = None,
    logs: LogSource | None = None,
    events: EventsDeps | None = None,
    twins: TwinDeps | None = None,
    pipelines: PipelineService | None = None,
    workflows: Workflows | None = None,
) -> ASGIApp:
    api = FastAPI(
        title="edgeweave",
        version=deps.version,
        description="Kubernetes-shaped resources for edge fleets; see docs/api.md.",
        redoc_url=None,
    )
    discovery = discovery_document()

    @api.exception_handler(EdgeweaveError)
    async def _edgeweave_error(request: Request, exc: EdgeweaveError) -> Response:
        return error_response(exc)

    @api.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return status_response(400, "BadRequest", f"bad request parameters: {problems}")

    @api.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        reason = _HTTP_REASONS.get(exc.status_code, "BadRequest")
        message = (
            f"no route for {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return status_response(exc.status_code, reason, message)

    @api.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        return internal_error_response(exc)

    @api.get("/healthz", tags=["meta"])
    async def healthz() -> Response:
        """Liveness: 200 while the process serves requests (no authentication)."""
        return json_response({"status": "ok"})

    @api.get("/version", tags=["meta"])
    async def version() -> Response:
        """Server version and store backend."""
        return json_response(
            {"version": deps.version, "store": deps.store_kind, "python": platform.python_version()}
        )

    @api.get("/apis", tags=["meta"])
    async def apis() -> Response:
        """The kinds this server knows, with the names the CLI accepts for them."""
        return json_response(discovery)

    if twins is not None:  # first: a twin set is on the device round trip, routes match in order
        api.include_router(build_twins_router(twins))
    api.include_router(build_router(deps))
    overrides: dict[str, int] = {}
    if join is not None:
        api.include_router(build_join_router(join))
    if events is not None:
        api.include_router(build_events_router(events))
    if logs is not None:
        api.include_router(build_logs_router(logs))
    if objects is not None:
        api.include_router(build_objects_router(objects))
        overrides["/api/v1/objects/"] = objects.store.max_bytes
    if pipelines is not None:
        api.include_router(build_pfs_router(pipelines))
        api.include_router(build_pps_router(pipelines))
        overrides[FILES_PREFIX] = pipelines.settings.max_file_bytes
        if objects is not None:  # Copier fetches by nodes: signed like object URLs
            api.include_router(build_transfer_router(pipelines, objects.url_secret))
            api.include_router(build_merge_router(pipelines, objects.url_secret))
            overrides[MERGE_PATH + "/"] = MAX_MANIFEST_BYTES
            api.include_router(build_output_router(pipelines, objects.url_secret))
            overrides[OUTPUT_PATH + "/"] = MAX_MANIFEST_BYTES
    if workflows is not None:
        api.include_router(build_workflows_router(workflows))
    return BodyLimit(BearerAuth(api, token_check), deps.settings.max_body_bytes, overrides)
