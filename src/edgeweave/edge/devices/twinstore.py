"""The agent's twins on disk: one row per device in its own SQLite file (``twins.db``).

A :class:`HeldTwin` is a device's :class:`~edgeweave.twin.state.DeviceTwin` plus the last
desired value per property the cloud sent (``cloud_desired``): a Device object whose desired
value differs from it carries a new cloud value; equal, it is the one already applied (a
value set locally since then stands until the cloud changes its own).

Writes are coalesced by the host (:meth:`TwinStore.save` takes every changed device at
once, one transaction). Must not apply twin rules or know about MQTT.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeweave.aio.sqlite import SQLiteThread
from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.messages import TwinValue, Versions
from edgeweave.twin.state import DeviceTwin, PropertyTwin
from edgeweave.twin.topics import device_ref

SCHEMA = """
CREATE TABLE IF NOT EXISTS twins (
    namespace TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class HeldTwin:
    twin: DeviceTwin
    cloud_desired: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def ref(self) -> ResourceRef:
        return self.twin.device


def _value(v: TwinValue | None) -> list[Any] | None:
    return None if v is None else [v.value, v.timestamp_ms]


def _versions(v: Versions) -> list[int]:
    return [v.cloud, v.edge]


def to_json(held: HeldTwin) -> str:
    twin = held.twin
    props = {
        key: {
            "type": p.type,
            "expected": _value(p.expected),
            "actual": _value(p.actual),
            "optional": p.optional,
            "readOnly": p.read_only,
            "ev": _versions(p.expected_version),
            "av": _versions(p.actual_version),
        }
        for key, p in twin.properties.items()
    }
    return json.dumps(
        {
            "properties": props,
            "state": twin.state,
            "lastOnline": twin.last_online_ms,
            "cloudDesired": dict(held.cloud_desired),
        },
        separators=(",", ":"),
    )


def _read_value(raw: Any) -> TwinValue | None:
    return None if raw is None else TwinValue(str(raw[0]), raw[1])


def from_json(namespace: str, name: str, text: str) -> HeldTwin:
    data = json.loads(text)
    props = {
        key: PropertyTwin(
            type=p["type"],
            expected=_read_value(p["expected"]),
            actual=_read_value(p["actual"]),
            optional=bool(p["optional"]),
            read_only=bool(p["readOnly"]),
            expected_version=Versions(*p["ev"]),
            actual_version=Versions(*p["av"]),
        )
        for key, p in data["properties"].items()
    }
    twin = DeviceTwin(device_ref(namespace, name), props, data["state"], data["lastOnline"])
    return HeldTwin(twin, data["cloudDesired"])


class TwinStore:
    """Use :func:`open_twin_store`; call from one event loop."""

    def __init__(self, path: Path) -> None:
        self._sql = SQLiteThread(
            path,
            name="twin store",
            thread_name="edgeweave-twins",
            pragmas={"journal_mode": "WAL", "synchronous": "NORMAL", "busy_timeout": 5000},
            schema=SCHEMA,
        )

    async def load(self) -> dict[ResourceRef, HeldTwin]:
        rows = await self._sql.run(self._db_all)
        held = (from_json(ns, name, text) for ns, name, text in rows)
        return {h.ref: h for h in held}

    async def save(self, changed: Iterable[HeldTwin], deleted: Iterable[ResourceRef] = ()) -> None:
        rows = [(h.ref.namespace, h.ref.name, to_json(h)) for h in changed]
        gone = [(r.namespace, r.name) for r in deleted]
        if rows or gone:
            await self._sql.run(self._db_save, rows, gone)

    async def aclose(self) -> None:
        await self._sql.aclose()

    def _db_all(self) -> list[tuple[str, str, str]]:
        return self._sql.connection.execute("SELECT namespace, name, json FROM twins").fetchall()

    def _db_save(self, rows: list[tuple[str, str, str]], gone: list[tuple[str, str]]) -> None:
        with self._sql.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO twins VALUES (?, ?, ?)", rows)
            db.executemany("DELETE FROM twins WHERE namespace = ? AND name = ?", gone)


async def open_twin_store(path: Path) -> TwinStore:
    store = TwinStore(path)
    await store._sql.open()  # the constructor does no I/O
    return store
