"""The SQL text of the SQLite store, kept apart from the adapter's logic.

Plain statements with ``?`` placeholders. Must not import a database driver or hold state;
only :mod:`.sqlite` and :mod:`.sqlite_sync` use these.
"""

from __future__ import annotations

from edgeweave.cloud.store._nodesync import EVENT_COLUMNS, HISTORY_COLUMNS

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changelog (
    rv INTEGER PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('rv', 0), ('compacted', 0);
"""
# per-node sync tables (docs/design/edge-link.md §3, §5) and used join tokens
SYNC_SCHEMA = """
CREATE TABLE IF NOT EXISTS node_acks (
    node TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, PRIMARY KEY (node, kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_upstream (
    node TEXT PRIMARY KEY, committed_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, time REAL NOT NULL,
    object_kind TEXT NOT NULL, object_namespace TEXT NOT NULL, object_name TEXT NOT NULL,
    type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL
);
-- no index by object: it doubled the cost of every upstream event (the hot path), while the
-- rare per-object read scans newest-first by id and stops at its LIMIT
DROP INDEX IF EXISTS events_by_object;
CREATE TABLE IF NOT EXISTS join_tokens (jti TEXT PRIMARY KEY, exp INTEGER NOT NULL) WITHOUT ROWID;
-- reported twin values (device.twin samples); rows per (device, property) are counted in
-- twin_history_points so retention by count costs an index range, not a count(*)
CREATE TABLE IF NOT EXISTS twin_history (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    property TEXT NOT NULL, time_ms INTEGER NOT NULL, value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS twin_history_by_property
    ON twin_history (namespace, name, property, time_ms);
CREATE TABLE IF NOT EXISTS twin_adoptions (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    items TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', lease_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS twin_history_points (
    namespace TEXT NOT NULL, name TEXT NOT NULL, property TEXT NOT NULL, points INTEGER NOT NULL,
    PRIMARY KEY (namespace, name, property)
) WITHOUT ROWID;
"""

# objects, change log, counters
GET = "SELECT rv, json FROM objects WHERE kind = ? AND namespace = ? AND name = ?"
INSERT = "INSERT INTO objects VALUES (?, ?, ?, ?, ?)"
UPDATE = "UPDATE objects SET rv = ?, json = ? WHERE kind = ? AND namespace = ? AND name = ?"
DELETE = "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?"
NEXT_RV = "UPDATE meta SET value = value + 1 WHERE key = 'rv' RETURNING value"
ADD_RV = "UPDATE meta SET value = value + ? WHERE key = 'rv' RETURNING value"
CURRENT_RV = "SELECT value FROM meta WHERE key = 'rv'"
COMPACTED = "SELECT value FROM meta WHERE key = 'compacted'"
SET_COMPACTED = "UPDATE meta SET value = ? WHERE key = 'compacted'"
LOG = "INSERT INTO changelog (rv, kind, namespace, name, type, json) VALUES (?, ?, ?, ?, ?, ?)"
CHANGES = (
    "SELECT rv, type, kind, namespace, name, json FROM changelog WHERE rv > ? ORDER BY rv LIMIT ?"
)
NTH_NEWEST = "SELECT rv FROM changelog ORDER BY rv DESC LIMIT 1 OFFSET ?"
TRIM = "DELETE FROM changelog WHERE rv <= ?"


def list_query(by_namespace: bool, after: bool, limited: bool) -> str:
    """One page chunk of a list; parameters: kind[, namespace][, after ns, after name][, limit]."""
    query = "SELECT namespace, name, json FROM objects WHERE kind = ?"
    if by_namespace:
        query += " AND namespace = ?"
    if after:
        query += " AND (namespace, name) > (?, ?)"
    query += " ORDER BY namespace, name"
    return query + " LIMIT ?" if limited else query


# node sync tables
ACKED = "SELECT kind, namespace, name, rv FROM node_acks WHERE node = ?"
ACKS_CLEAR = "DELETE FROM node_acks WHERE node = ?"
UPSTREAM_CLEAR = "DELETE FROM node_upstream WHERE node = ?"
ACK_UPSERT = (
    "INSERT INTO node_acks (node, kind, namespace, name, rv) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (node, kind, namespace, name) DO UPDATE SET rv = excluded.rv"
)
ACK_DROP_DELETED = (
    "DELETE FROM node_acks WHERE node = ? AND kind = ? AND namespace = ? AND name = ? "
    "AND NOT EXISTS (SELECT 1 FROM objects WHERE kind = ? AND namespace = ? AND name = ?)"
)
UPSTREAM_GET = "SELECT committed_seq FROM node_upstream WHERE node = ?"
UPSTREAM_SET = (
    "INSERT INTO node_upstream (node, committed_seq) VALUES (?, ?) "
    "ON CONFLICT (node) DO UPDATE SET committed_seq = excluded.committed_seq"
)
EVENT_INSERT = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
EVENTS_NEWEST_ID = "SELECT max(id) FROM events"
EVENTS_TRIM = "DELETE FROM events WHERE id <= ?"
EVENTS_LIST = f"SELECT id, {EVENT_COLUMNS} FROM events"  # noqa: S608 (fixed column names)
_HISTORY_KEY = "namespace = ? AND name = ? AND property = ?"
HISTORY_INSERT = f"INSERT INTO twin_history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608
HISTORY_DROP_OLD = f"DELETE FROM twin_history WHERE {_HISTORY_KEY} AND time_ms < ?"  # noqa: S608
HISTORY_POINTS_ADD = (
    "INSERT INTO twin_history_points (namespace, name, property, points) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (namespace, name, property) "
    "DO UPDATE SET points = max(0, points + excluded.points) RETURNING points"
)
HISTORY_POINTS_SET = f"UPDATE twin_history_points SET points = ? WHERE {_HISTORY_KEY}"  # noqa: S608
HISTORY_DROP_OLDEST = (
    "DELETE FROM twin_history WHERE id IN (SELECT id FROM twin_history "  # noqa: S608
    f"WHERE {_HISTORY_KEY} ORDER BY time_ms, id LIMIT ?)"
)
HISTORY_DELETE = "DELETE FROM twin_history WHERE namespace = ? AND name = ?"
HISTORY_POINTS_DELETE = "DELETE FROM twin_history_points WHERE namespace = ? AND name = ?"
HISTORY_DEVICES = "SELECT DISTINCT namespace, name FROM twin_history_points ORDER BY 1, 2"
HISTORY_LIST = "SELECT property, value, time_ms FROM twin_history WHERE namespace = ? AND name = ?"
JTI_EXPIRE = "DELETE FROM join_tokens WHERE exp < ?"
JTI_INSERT = "INSERT INTO join_tokens (jti, exp) VALUES (?, ?) ON CONFLICT DO NOTHING"

# desired values set on nodes, waiting to be adopted
ADOPTION_INSERT = "INSERT INTO twin_adoptions (node, namespace, name, items) VALUES (?, ?, ?, ?)"
ADOPTIONS_FREE = (
    "SELECT id, node, namespace, name, items FROM twin_adoptions WHERE lease_until <= ? "
    "ORDER BY id LIMIT ?"
)
ADOPTION_CLAIM = "UPDATE twin_adoptions SET owner = ?, lease_until = ? WHERE id = ?"
ADOPTION_DELETE = "DELETE FROM twin_adoptions WHERE id = ?"
