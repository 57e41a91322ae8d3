"""JSON merge patch (RFC 7386), as ``PATCH`` with ``application/merge-patch+json`` applies it.

Pure: neither argument is mutated and the result shares no containers with them. This module
must not validate the result; the caller validates the patched object like any other write.
"""

from __future__ import annotations

import copy
from typing import Any

from edgeweave.errors import BadRequest


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``target`` with ``patch`` applied: ``null`` removes a key, objects merge recursively,
    any other value (lists included) replaces the old one."""
    if not isinstance(patch, dict):
        raise BadRequest(
            f"a merge patch for an object must be a JSON object, not {type(patch).__name__}"
        )
    result = _merge(target, patch)
    assert isinstance(result, dict)
    return result


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result
