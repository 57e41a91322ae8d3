"""JSON merge patch (RFC 7386), as ``PATCH`` with ``application/merge-patch+json`` applies it.

:func:`merge_patch` is pure: neither argument is mutated and the result shares no containers
with them. :func:`merge_patch_into` changes a target the caller owns (one just decoded, say)
and spares the copy of it; what it takes from the patch is still copied. This module must not
validate the result; the caller validates the patched object like any other write.
"""

from __future__ import annotations

from typing import Any

from edgeweave.errors import BadRequest


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``target`` with ``patch`` applied: ``null`` removes a key, objects merge recursively,
    any other value (lists included) replaces the old one."""
    _check(patch)
    result: dict[str, Any] = copy_json(target)
    _merge_into(result, patch)
    return result


def merge_patch_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Apply ``patch`` to ``target`` in place (the same rules as :func:`merge_patch`)."""
    _check(patch)
    _merge_into(target, patch)


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars): faster than ``copy.deepcopy``,
    which also handles shared and cyclic references JSON cannot have."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def _check(patch: Any) -> None:
    if not isinstance(patch, dict):
        raise BadRequest(
            f"a merge patch for an object must be a JSON object, not {type(patch).__name__}"
        )


def _merge_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge_into(current, value)
        else:
            target[key] = copy_json(value)
