"""`GET /api/v1/events`: what nodes reported about objects (and what the hub refused).

Events arrive through the agents' outboxes and are kept, newest first, up to a retention bound
in the store. Filters: ``kind``, ``namespace``, ``name`` (one object), ``node``; ``limit``
(default 50, at most 1000). Admin only. Read-only: nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.store.base import NodeSyncStore
from edgeweave.errors import BadRequest

MAX_LIMIT = 1000


@dataclass(frozen=True)
class EventsDeps:
    store: NodeSyncStore


def build_events_router(deps: EventsDeps) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v1/events", tags=["events"])
    async def events(
        request: Request,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        node: str | None = None,
        limit: int = 50,
    ) -> Response:
        """Events, oldest first among the newest ``limit`` that match."""
        require_admin(request)
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
        items = await deps.store.list_events(kind, namespace, name, node, limit)
        return json_response({"kind": "EventList", "items": items})

    return router
