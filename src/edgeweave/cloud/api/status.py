"""Errors as JSON ``Status`` bodies with a stable ``reason`` and the HTTP code for each.

The one place an :class:`~edgeweave.errors.EdgeweaveError` becomes an HTTP answer. A bug (any
other exception) becomes a 500 whose body says nothing internal; the traceback goes to the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response

from edgeweave import errors

log = logging.getLogger(__name__)

_CODES: dict[type[errors.EdgeweaveError], int] = {
    errors.UnknownKind: 400,
    errors.InvalidObject: 422,
    errors.BadRequest: 400,
    errors.PayloadTooLarge: 413,
    errors.TooManyRequests: 429,
    errors.ProtocolError: 400,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.StoreUnavailable: 503,
    errors.LinkError: 503,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.ConfigError: 400,
}


def code_for(exc: errors.EdgeweaveError) -> int:
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return 500


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if details:
        body["details"] = details
    return json.dumps(body).encode()


def status_response(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return Response(
        status_body(code, reason, message, details),
        status_code=code,
        media_type="application/json",
        headers=headers,
    )


def error_response(exc: errors.EdgeweaveError) -> Response:
    details: dict[str, Any] = {}
    if isinstance(exc, errors.InvalidObject):
        if exc.field:
            details["field"] = exc.field
        details["errors"] = exc.errors
    return status_response(code_for(exc), exc.reason, exc.message, details or None)


def internal_error_response(exc: BaseException) -> Response:
    log.error("internal error while serving a request", exc_info=exc)
    return status_response(500, "InternalError", "internal server error; see the cloud's log")
