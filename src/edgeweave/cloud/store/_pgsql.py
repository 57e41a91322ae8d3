"""The SQL text of the PostgreSQL store, kept apart from the adapter's logic.

Templates only: ``{s}`` is replaced by the quoted schema name once, when a store is built.
Must not import a database driver or hold state; only :mod:`.postgres` uses these.
"""

from __future__ import annotations

DDL = [
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.objects (
        kind TEXT COLLATE "C" NOT NULL, namespace TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL, rv BIGINT NOT NULL, json TEXT NOT NULL,
        PRIMARY KEY (kind, namespace, name))""",
    """CREATE TABLE IF NOT EXISTS {s}.changelog (
        rv BIGINT PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL,
        name TEXT NOT NULL, type TEXT NOT NULL, json TEXT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS {s}.meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO {s}.meta VALUES ('rv', 0), ('compacted', 0) ON CONFLICT DO NOTHING",
]
QUERIES = {
    "next_rv": "UPDATE {s}.meta SET value = value + 1 WHERE key = 'rv' RETURNING value",
    "current_rv": "SELECT value FROM {s}.meta WHERE key = 'rv'",
    "compacted": "SELECT value FROM {s}.meta WHERE key = 'compacted'",
    "get": "SELECT rv, json FROM {s}.objects WHERE kind = %s AND namespace = %s AND name = %s",
    "put": """WITH o AS (
        INSERT INTO {s}.objects AS t (kind, namespace, name, rv, json)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (kind, namespace, name) DO UPDATE SET rv = EXCLUDED.rv, json = EXCLUDED.json
        RETURNING t.kind, t.namespace, t.name, t.rv, t.json),
      l AS (INSERT INTO {s}.changelog (rv, kind, namespace, name, type, json)
        SELECT rv, kind, namespace, name, %s::text, json FROM o)
    SELECT pg_notify(%s::text, %s::text)""",
    "remove": """WITH d AS (
        DELETE FROM {s}.objects WHERE kind = %s AND namespace = %s AND name = %s),
      l AS (INSERT INTO {s}.changelog (rv, kind, namespace, name, type, json)
        VALUES (%s, %s, %s, %s, 'DELETED', %s))
    SELECT pg_notify(%s::text, %s::text)""",
    "changes": """SELECT m.value, c.rv, c.type, c.kind, c.namespace, c.name, c.json
    FROM {s}.meta m LEFT JOIN LATERAL (
        SELECT * FROM {s}.changelog WHERE rv > %s ORDER BY rv LIMIT %s) c ON true
    WHERE m.key = 'compacted' ORDER BY c.rv""",
    "lock_compacted": "SELECT value FROM {s}.meta WHERE key = 'compacted' FOR UPDATE",
    "nth_newest": "SELECT rv FROM {s}.changelog ORDER BY rv DESC LIMIT 1 OFFSET %s",
    "trim": "DELETE FROM {s}.changelog WHERE rv <= %s",
    "set_compacted": "UPDATE {s}.meta SET value = %s WHERE key = 'compacted'",
}
# one page chunk of a list, with the store version read in the same statement (snapshot)
LIST_TEMPLATE = (
    "SELECT m.value, o.namespace, o.name, o.json FROM {s}.meta m LEFT JOIN LATERAL "
    "(SELECT namespace, name, json FROM {s}.objects WHERE {where} "
    "ORDER BY namespace, name{limit}) o ON true "
    "WHERE m.key = 'rv' ORDER BY o.namespace, o.name"
)
