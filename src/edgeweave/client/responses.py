"""Turning an API answer into a value or into the edgeweave exception it stands for.

This is the one place that reads the API's error JSON ``{"reason", "message", "details"}``:
the ``reason`` picks the class through :func:`edgeweave.errors.error_for_reason`, validation
errors keep ``details.field`` / ``details.errors``. Answers that are not JSON, or carry a reason
no class has, become :class:`APIError` with the HTTP status. Pure: works on status and bytes,
never on a socket or an httpx type.
"""

from __future__ import annotations

import json
from typing import Any

from edgeweave.errors import (
    APIError,
    AuthError,
    EdgeweaveError,
    InvalidObject,
    ProtocolError,
    error_for_reason,
)

MAX_ERROR_TEXT = 300


def decode_body(status: int, content: bytes, what: str) -> Any:
    """The JSON value of a successful answer; raises the mapped error for any other status."""
    if not 200 <= status < 300:
        raise error_from_answer(status, content, what)
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError as e:
        raise ProtocolError(
            f"{what}: the server answered {status} with a body that is not JSON"
        ) from e


def error_from_answer(status: int, content: bytes, what: str) -> EdgeweaveError:
    """The exception an error answer stands for. ``what`` is e.g. ``GET https://host/apis``."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("reason"), str):
        text = content[:MAX_ERROR_TEXT].decode("utf-8", errors="replace").strip()
        return APIError(f"{what}: HTTP {status}: {text or 'no body'}", status=status)
    reason: str = body["reason"]
    message = str(body.get("message") or reason)
    raw_details = body.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    cls = error_for_reason(reason)
    if cls is None or cls is APIError:
        return APIError(f"{message} (HTTP {status} {reason})", status=status, api_reason=reason)
    if issubclass(cls, InvalidObject):
        errors = details.get("errors")
        return cls(
            message,
            field=str(details.get("field") or ""),
            errors=[str(x) for x in errors] if isinstance(errors, list) and errors else None,
        )
    if issubclass(cls, AuthError):
        # say which answer it was: users search for "401"
        return cls(f"{reason} (HTTP {status}): {message}")
    return cls(message)
