"""Turn pydantic validation errors into one :class:`~edgeweave.errors.InvalidObject`.

Paths are dotted with ``[i]`` list indexes (``spec.properties[0].type``), the form the API
puts in ``details.field``; each problem becomes ``"path: message"``. Messages are reworded so
a user knows what to change. This module must not know about particular kinds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from edgeweave.errors import InvalidObject
from edgeweave.models.base import PROBLEMS_ERROR, UNION_TAGS, join_path

_PLAIN_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PREFIXES = ("Value error, ", "Assertion failed, ")


def loc_to_path(loc: Sequence[int | str]) -> str:
    """``("spec", "ports", 0, "port")`` → ``"spec.ports[0].port"``; odd keys are quoted."""
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif item in UNION_TAGS:
            continue
        elif _PLAIN_KEY_RE.match(item):
            path = join_path(path, item)
        else:
            path += f'["{item}"]'
    return path


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field; check its spelling and indentation (names are case-sensitive)"
    msg = err["msg"]
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    if kind.endswith("_type") or kind in ("literal_error", "enum", "string_pattern_mismatch"):
        return f"{msg}, got {_describe(err.get('input'))}"
    if kind.startswith(("greater_than", "less_than", "too_short", "too_long")):
        return f"{msg}, got {_describe(err.get('input'))}"
    return msg


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """Every problem in ``exc`` as ``(dotted path, message)``, in pydantic's order."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        base = loc_to_path(err["loc"])
        ctx = err.get("ctx") or {}
        if err["type"] == PROBLEMS_ERROR and "problems" in ctx:
            for rel, msg in ctx["problems"]:
                out.append((join_path(base, rel), msg))
        else:
            out.append((base, _message(err)))
    return out


def invalid_object(exc: ValidationError, what: str) -> InvalidObject:
    """An :class:`InvalidObject` for ``exc``; ``what`` names the object (``App default/x``)."""
    return invalid_from_problems(problems_of(exc), what)


def invalid_from_problems(problems: Sequence[tuple[str, str]], what: str) -> InvalidObject:
    errors = [f"{path}: {msg}" if path else msg for path, msg in problems]
    if not errors:
        return InvalidObject(f"{what} is invalid")
    more = len(errors) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return InvalidObject(
        f"{what} is invalid: {errors[0]}{tail}", field=problems[0][0], errors=errors
    )
