"""HTTP side of the object store: ``HEAD``, ``PUT`` and ``GET /api/v1/objects/{digest}``.

``HEAD`` and ``PUT`` need the admin token; ``PUT`` streams the body to the store (the
generic JSON body limit does not apply here: :class:`~.guards.BodyLimit` uses
``objects.max_bytes`` for this prefix). ``GET`` takes the admin token or a presigned
``?node=&exp=&sig=`` (which :class:`~.guards.BearerAuth` lets through for this route only)
and supports one ``Range: bytes=`` range (206, or 416 when it cannot be satisfied).

Must not buffer a whole object in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from edgeweave.cloud.api.bodies import json_response
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.api.status import status_response
from edgeweave.cloud.objects import ObjectStore, check_digest, verify_object_url
from edgeweave.errors import Forbidden

OBJECT_PATH = "/api/v1/objects/{digest}"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class ObjectDeps:
    store: ObjectStore
    url_secret: bytes


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range, or None when it cannot be served."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # suffix: the last N bytes
        suffix = int(match[2])
        return (max(0, size - suffix), size) if suffix > 0 and size > 0 else None
    start = int(match[1])
    end = min(int(match[2]) + 1, size) if match[2] else size
    if start >= size or end <= start:
        return None
    return start, end


def build_objects_router(deps: ObjectDeps) -> APIRouter:
    r = APIRouter(tags=["objects"])
    store = deps.store

    @r.head(OBJECT_PATH, summary="Is the object stored? (admin)")
    async def head(digest: str, request: Request) -> Response:
        require_admin(request)
        check_digest(digest)
        if not store.exists(digest):
            return Response(status_code=404)
        return Response(status_code=200, headers={"Content-Length": str(store.size(digest))})

    @r.put(OBJECT_PATH, summary="Upload an object; its sha256 must match the digest (admin)")
    async def put(digest: str, request: Request) -> Response:
        require_admin(request)
        check_digest(digest)
        size = await store.write_stream(digest, request.stream())
        return json_response({"digest": digest, "size": size}, 201)

    @r.get(OBJECT_PATH, summary="Download (admin, or a presigned ?node=&exp=&sig=); Range ok")
    async def get(digest: str, request: Request) -> Response:
        check_digest(digest)
        if request.scope.get("state", {}).get("principal") is None:
            q = request.query_params
            node, exp, sig = q.get("node"), q.get("exp"), q.get("sig")
            if not node or not exp or not sig:
                raise Forbidden("a presigned URL needs node, exp and sig")
            verify_object_url(deps.url_secret, digest, node, exp, sig)
        size = store.size(digest)
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{digest}"'}
        wanted = request.headers.get("range")
        if wanted is None:
            headers["Content-Length"] = str(size)
            return StreamingResponse(
                store.open_range(digest), media_type="application/octet-stream", headers=headers
            )
        span = parse_range(wanted, size)
        if span is None:
            answer = status_response(
                416, "RangeNotSatisfiable", f"range {wanted!r} is outside 0-{size} bytes"
            )
            answer.headers["Content-Range"] = f"bytes */{size}"
            return answer
        start, end = span
        headers["Content-Length"] = str(end - start)
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return StreamingResponse(
            store.open_range(digest, start, end),
            status_code=206,
            media_type="application/octet-stream",
            headers=headers,
        )

    return r
