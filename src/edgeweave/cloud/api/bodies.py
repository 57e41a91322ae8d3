"""Reading request bodies and writing JSON responses, with clear errors for bad input."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgeweave.errors import BadRequest


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()  # bounded by the BodyLimit middleware
    if not raw:
        raise BadRequest("request body is empty: send a JSON object")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(value).__name__}")
    return value


def json_response(value: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(value, separators=(",", ":")).encode(),
        status_code=status_code,
        media_type="application/json",
    )
