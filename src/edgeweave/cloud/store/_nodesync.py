"""Backend-independent logic of the per-node sync tables (acks, upstream commits, events,
twin history).

Both adapters turn an upstream commit into the same rows: events become flat tuples, status
patches are grouped per object (applied in order, one write per object per commit), twin
samples become history rows counted per (device, property) for retention, and an events or
history row reads back as the dict the hub wrote. Pure functions: this module must not do I/O
and must not import a database library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeweave.cloud.store._objects import ObjectKey, prepare_update
from edgeweave.cloud.store.base import JSONObject, StatusWrite, TwinSample
from edgeweave.errors import BadRequest
from edgeweave.models.patch import merge_patch_into

DEFAULT_EVENTS_RETENTION = 100_000

EVENT_COLUMNS = "node, time, object_kind, object_namespace, object_name, type, reason, message"
HISTORY_COLUMNS = "node, namespace, name, property, time_ms, value"

HistoryKey = tuple[str, str, str]  # (device namespace, device name, property)
HistoryRow = tuple[str, str, str, str, int, str]  # in HISTORY_COLUMNS order


def event_from_row(row: Sequence[Any]) -> JSONObject:
    """``(id, node, time, kind, namespace, name, type, reason, message)`` as an event dict."""
    return {
        "id": int(row[0]),
        "node": row[1],
        "time": float(row[2]),
        "object": {"kind": row[3], "namespace": row[4], "name": row[5]},
        "type": row[6],
        "reason": row[7],
        "message": row[8],
    }


def group_status_writes(writes: Sequence[StatusWrite]) -> dict[ObjectKey, list[JSONObject]]:
    """Patches per object, in arrival order (first-seen object order kept)."""
    grouped: dict[ObjectKey, list[JSONObject]] = {}
    for kind, namespace, name, patch in writes:
        if not isinstance(patch, dict):
            raise BadRequest(f"status patch for {kind} {namespace}/{name} must be an object")
        grouped.setdefault((kind, namespace, name), []).append(patch)
    return grouped


def apply_status(stored: JSONObject, patches: Sequence[JSONObject], rv: int) -> JSONObject:
    """``stored`` (the caller's own: its status is changed in place) with each patch merged
    into ``status`` in turn, stamped with ``rv``."""
    status = stored.get("status")
    merged: JSONObject = status if isinstance(status, dict) else {}
    for patch in patches:
        merge_patch_into(merged, patch)
    updated = dict(stored)
    updated["status"] = merged
    return prepare_update(updated, stored, rv)


def events_query_filters(
    object_kind: str | None, namespace: str | None, name: str | None, node: str | None
) -> tuple[list[str], list[str]]:
    """``(column = ? conditions, params)`` for a list of events (placeholders are the
    adapter's business: each condition holds ``{p}`` where the placeholder goes)."""
    conditions: list[str] = []
    params: list[str] = []
    for column, value in (
        ("object_kind", object_kind),
        ("object_namespace", namespace),
        ("object_name", name),
        ("node", node),
    ):
        if value is not None:
            conditions.append(f"{column} = {{p}}")
            params.append(value)
    return conditions, params


def history_rows(
    node: str, samples: Sequence[TwinSample]
) -> tuple[list[HistoryRow], dict[HistoryKey, int]]:
    """The history rows of ``samples`` reported by ``node``, and how many each (device,
    property) gets, keys sorted (so concurrent writers lock counter rows in one order)."""
    rows: list[HistoryRow] = []
    added: dict[HistoryKey, int] = {}
    for namespace, name, prop, time_ms, value in samples:
        rows.append((node, namespace, name, prop, int(time_ms), value))
        key = (namespace, name, prop)
        added[key] = added.get(key, 0) + 1
    return rows, dict(sorted(added.items()))


def history_cutoff_ms(max_age_s: float, now_s: float) -> int:
    """Samples with a time (Unix ms) below this are older than the retention allows."""
    return int((now_s - max_age_s) * 1000)


def history_item(row: Sequence[Any]) -> JSONObject:
    """``(property, value, time_ms)`` as the dict :meth:`list_twin_history` returns."""
    return {"property": row[0], "value": row[1], "timestamp": int(row[2])}


def history_query_filters(
    property_name: str | None, since_ms: int | None
) -> tuple[list[str], list[Any]]:
    """Extra conditions of a history read (``{p}`` stands for the adapter's placeholder)."""
    conditions: list[str] = []
    params: list[Any] = []
    if property_name is not None:
        conditions.append("property = {p}")
        params.append(property_name)
    if since_ms is not None:
        conditions.append("time_ms >= {p}")
        params.append(int(since_ms))
    return conditions, params
