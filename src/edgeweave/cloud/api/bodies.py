"""Reading request bodies and writing JSON responses, with clear errors for bad input."""

from __future__ import annotations

import json
from typing import Any, overload

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


@overload
def int_param(request: Request, name: str, default: int, low: int, high: int) -> int: ...
@overload
def int_param(request: Request, name: str, default: None, low: int, high: int) -> int | None: ...
def int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """The integer query parameter ``name`` (``default`` when absent), BadRequest unless it
    lies in ``[low, high]``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}") from e
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value
