"""Rendering objects for people and scripts: tables, ages, JSON and YAML.

Tables look like kubectl's: upper-case headers, left-aligned columns padded to the widest cell
plus three spaces, ``<none>`` for a missing value, AGE as ``5s``, ``3m``, ``2h``, ``4d``, ``1y``.
Columns come from the discovery document (``columns`` / ``wideColumns`` as
``{"name", "jsonPath"}``) and are read by :mod:`edgeweave.models.columns`. Pure string
building: this module writes nothing and imports yaml only when YAML is asked for.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from edgeweave.client.discovery import Column
from edgeweave.models.columns import column_text

NONE = "<none>"
AGE_PATH = "metadata.creationTimestamp"  # a column with this path shows the age
_PAD = 3


def format_age(seconds: float) -> str:
    """A short age, kubectl style: ``45s``, ``3m``, ``2h``, ``4d``, ``2y``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 365 * 86400:
        return f"{s // 86400}d"
    return f"{s // (365 * 86400)}y"


def parse_timestamp(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def object_age(obj: dict[str, Any], now: datetime | None = None) -> str:
    created = parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    if created is None:
        return NONE
    now = now or datetime.now(UTC)
    return format_age((now - created).total_seconds())


def column_path(json_path: str) -> str:
    """A discovery ``jsonPath`` (``{.status.phase}``, ``.status.phase``) as a bare dotted path."""
    path = json_path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    return path.lstrip(".")


def cell(value: Any) -> str:
    if value is None or (isinstance(value, str | list | dict) and not value):
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


def _is_age(column: Column) -> bool:
    return column_path(column.json_path) == AGE_PATH


def table_headers(columns: Sequence[Column], all_namespaces: bool) -> list[str]:
    """Headers; AGE comes last unless the kind's columns already place it."""
    heads = ["NAMESPACE"] if all_namespaces else []
    tail = [] if any(_is_age(c) for c in columns) else ["AGE"]
    return [*heads, "NAME", *(c.name.upper() for c in columns), *tail]


def table_row(
    obj: dict[str, Any],
    columns: Sequence[Column],
    all_namespaces: bool,
    now: datetime | None = None,
) -> list[str]:
    meta = obj.get("metadata") or {}
    row = [cell(meta.get("namespace"))] if all_namespaces else []
    row.append(cell(meta.get("name")))
    for c in columns:
        row.append(
            object_age(obj, now) if _is_age(c) else column_text(obj, column_path(c.json_path))
        )
    if not any(_is_age(c) for c in columns):
        row.append(object_age(obj, now))
    return row


def render_table(rows: Sequence[Sequence[str]], min_widths: Sequence[int] = ()) -> str:
    """Rows (the first is usually the header) as aligned text lines, without a trailing newline."""
    if not rows:
        return ""
    count = max(len(r) for r in rows)
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(count)]
    for i, w in enumerate(min_widths[:count]):
        widths[i] = max(widths[i], w)
    lines = []
    for row in rows:
        cells = [c.ljust(widths[i] + _PAD) for i, c in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "\n".join(line.rstrip() for line in lines)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def to_yaml(value: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(
        value, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return text


def as_list(items: list[dict[str, Any]], resource_version: str = "") -> dict[str, Any]:
    """Several objects as one document, the way kubectl prints them."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    }


def print_listing(
    output: str,
    items: list[dict[str, Any]],
    rows: Callable[[list[dict[str, Any]]], Sequence[Sequence[str]]],
    noun: str,
) -> None:
    """A list command's answer: ``{"items": [...]}`` for ``-o json``, else a table of
    ``rows(items)`` (its first row the headers), or "No NOUN found." on stderr."""
    if output == "json":
        print(to_json({"items": items}))
    elif not items:
        print(f"No {noun} found.", file=sys.stderr)
    else:
        print(render_table(rows(items)))
