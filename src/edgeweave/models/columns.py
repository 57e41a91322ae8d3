"""Read a table column out of an object: the paths ``KindInfo.columns`` name.

Path syntax: dotted keys (``status.phase``), list indexes (``spec.ports[0].port``) and
``[*]`` for every item (``spec.properties[*].name`` → ``"temp,mode"``; on a map: every value),
``[@]`` for a map's keys (``status.nodes[@]`` → ``"edge-1,edge-2"``). Values render as text:
lists joined by ``,``, maps as ``k=v`` pairs, missing as ``<none>`` (``-`` for one missing
item of a ``[*]`` list). One computed path joins two lists no path can:
:data:`DESIRED_REPORTED` (``@desiredReported``) shows a Device's properties as
``name=desired/reported`` (``temp=22/21.5``; ``-`` for a missing value). Pure formatting: no
knowledge of time (the CLI turns ``metadata.creationTimestamp`` into an age) or of terminals.
"""

from __future__ import annotations

import json
import re
from typing import Any

NONE = "<none>"
DESIRED_REPORTED = "@desiredReported"
_TOKEN_RE = re.compile(r"([^.\[\]]+)|\[(\*|@|[0-9]+)\]")


def column_values(obj: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches in ``obj``: one per item under ``[*]``, ``None`` where an
    item lacks the rest of the path (so two ``[*]`` columns stay aligned)."""
    current: list[Any] = [obj]
    for key, index in _TOKEN_RE.findall(path):
        found: list[Any] = []
        for value in current:
            if index == "*" and isinstance(value, dict):
                found.extend(value[k] for k in sorted(value) if value[k] is not None)
            elif index == "*":
                found.extend(value if isinstance(value, list) else [None])
            elif index == "@":
                found.extend(sorted(value) if isinstance(value, dict) else [None])
            elif index:
                ok = isinstance(value, list) and int(index) < len(value)
                found.append(value[int(index)] if ok else None)
            else:
                found.append(value.get(key) if isinstance(value, dict) else None)
        current = found
    return current


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ",".join(f"{k}={render(v)}" for k, v in value.items()) or NONE
    if isinstance(value, list):
        return ",".join(render(v) for v in value) or NONE
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


def desired_reported(obj: Any) -> str:
    """``name=desired/reported`` per property of a Device (spec order, then twins only
    reported), ``-`` where a value is missing."""
    desired: dict[str, Any] = {}
    for prop in column_values(obj, "spec.properties[*]"):
        if isinstance(prop, dict) and isinstance(prop.get("name"), str):
            desired[prop["name"]] = column_values(prop, "desired.value")[0]
    reported: dict[str, Any] = {}
    for twin in column_values(obj, "status.twins[*]"):
        if isinstance(twin, dict) and isinstance(twin.get("propertyName"), str):
            reported[twin["propertyName"]] = column_values(twin, "reported.value")[0]
    names = [*desired, *(n for n in reported if n not in desired)]
    cells = []
    for name in names:
        want, have = desired.get(name), reported.get(name)
        want_text = "-" if want is None or want == "" else render(want)
        have_text = "-" if have is None or have == "" else render(have)
        cells.append(f"{name}={want_text}/{have_text}")
    return ",".join(cells) or NONE


def column_text(obj: Any, path: str) -> str:
    """The text a table cell shows for ``path`` in ``obj``."""
    if path == DESIRED_REPORTED:
        return desired_reported(obj)
    values = column_values(obj, path)
    if all(v is None for v in values):
        return NONE
    if "[*]" not in path and "[@]" not in path:
        return render(values[0])
    return ",".join("-" if v is None else render(v) for v in values)
