"""A Merger's settings as written (``pattern.merger``) and the pure rules that apply them.

``pattern.merger`` holds ``complete`` (when a merge is complete) and ``key`` (what the merge
is keyed by):

- ``complete``: ``{sources: all}`` (default: every node the placement selects has delivered),
  ``{count: N}`` (N nodes have), or ``{timeoutSeconds: T}`` (T seconds after the first
  delivery, or sooner when every source delivered);
- ``key``: ``node`` (default: one merge over the whole of each node's repo) or a
  **correlation key** read from each delivered file's path: ``{path: GLOB, template: "$1"}``
  — the glob's capture groups, put into the template (default ``$1``), name the key of every
  file the glob matches (``{path: "/(*)/**"}``: the top directory, e.g. a batch or a shift;
  ``{path: "/**_(*).csv"}``: a suffix of the file name). Files the glob does not match are
  not merged.

Completion is evaluated per key (node keying has the one key ``""``). :func:`merged_path`
says where a node's file lands in the merged view: ``/<node><path>`` under node keying,
``/<key>/<node><path>`` under a correlation key.

Pure: no I/O, no store, no clock (callers pass ``now``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgeweave.errors import InvalidObject
from edgeweave.pipelines.glob import Glob, expand_template, template_groups
from edgeweave.pipelines.mergedview import NODE_KEY, merged_path

__all__ = ["NODE_KEY", "MergerSpec", "check_merger", "is_complete", "merged_path"]
KEY_RE = re.compile(r"^[A-Za-z0-9_.=+@-]{1,128}$")
_COMPLETE_HINT = "one of {sources: all}, {count: N}, {timeoutSeconds: T}"
_KEY_HINT = 'node, or {path: GLOB with a capture group, template: "$1"}'


@dataclass(frozen=True)
class MergerSpec:
    condition: dict[str, Any]
    glob: Glob | None  # None: keyed by node
    template: str = "$1"

    def key_json(self) -> Any:
        if self.glob is None:
            return "node"
        return {"path": self.glob.pattern, "template": self.template}

    def key_of(self, path: str) -> str | None:
        """The correlation key of a file (``NODE_KEY`` under node keying); None: not merged."""
        if self.glob is None:
            return NODE_KEY
        found = self.glob.match_path(path)
        if found is None:
            return None
        key = expand_template(self.template, found[1])
        return key if KEY_RE.match(key) and key not in (".", "..") else None

    def timeout_s(self) -> float | None:
        value = self.condition.get("timeoutSeconds")
        return float(value) if value is not None else None


def _condition(complete: Any) -> dict[str, Any]:
    if complete is None:
        return {"sources": "all"}
    ok = (
        isinstance(complete, dict)
        and len(complete) == 1
        and (
            complete.get("sources") == "all"
            or (type(complete.get("count")) is int and complete["count"] >= 1)
            or (
                type(complete.get("timeoutSeconds")) in (int, float)
                and complete["timeoutSeconds"] > 0
            )
        )
    )
    if not ok:
        raise InvalidObject(
            f"pattern.merger.complete: {_COMPLETE_HINT}", field="pattern.merger.complete"
        )
    return dict(complete)


def _key(key: Any) -> tuple[Glob | None, str]:
    if key is None or key == "node":
        return None, "$1"
    if not isinstance(key, dict) or set(key) - {"path", "template"} or "path" not in key:
        raise InvalidObject(f"pattern.merger.key: {_KEY_HINT}", field="pattern.merger.key")
    path, template = key.get("path"), key.get("template", "$1")
    if not isinstance(path, str):
        raise InvalidObject("pattern.merger.key.path: a glob", field="pattern.merger.key.path")
    try:
        glob = Glob(path)
    except InvalidObject as e:
        raise InvalidObject(
            f"pattern.merger.key.path: {e.message}", field="pattern.merger.key.path"
        ) from None
    if glob.group_count < 1:
        raise InvalidObject(
            f"pattern.merger.key.path: {path!r} has no capture group; put parentheses around "
            "the part that names the key, e.g. /(*)/**",
            field="pattern.merger.key.path",
        )
    groups = template_groups(template) if isinstance(template, str) else []
    if not groups or max(groups) > glob.group_count:
        raise InvalidObject(
            f"pattern.merger.key.template: {template!r} must read the glob's capture groups "
            f"($1..${glob.group_count})",
            field="pattern.merger.key.template",
        )
    assert isinstance(template, str)
    return glob, template


def check_merger(settings: Any) -> MergerSpec:
    """``pattern.merger`` as written; InvalidObject naming the field when it is malformed."""
    if settings is None:
        settings = {}
    if not isinstance(settings, dict) or set(settings) - {"complete", "key"}:
        raise InvalidObject("pattern.merger: takes complete and key", field="pattern.merger")
    glob, template = _key(settings.get("key"))
    return MergerSpec(_condition(settings.get("complete")), glob, template)


def is_complete(
    condition: dict[str, Any], sources: list[str], received: dict[str, float], now: float
) -> bool:
    """Whether a key that ``received`` (node → first delivery time) have delivered is complete."""
    if not received:
        return False
    if "count" in condition:
        return len(received) >= int(condition["count"])
    if "timeoutSeconds" in condition:
        first = min(received.values())
        return now - first >= float(condition["timeoutSeconds"]) or (
            bool(sources) and set(sources) <= set(received)
        )
    return bool(sources) and set(sources) <= set(received)
