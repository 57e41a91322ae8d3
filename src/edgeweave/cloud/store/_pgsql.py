"""The SQL text of the PostgreSQL store, kept apart from the adapter's logic.

Templates only: ``{s}`` is replaced by the quoted schema name once, when a store is built;
plus the rules for schema names and the parameters of the write statements. Must not import
a database driver or hold state; only :mod:`.postgres` and :mod:`.postgres_sync` use these.
"""

from __future__ import annotations

import re
from typing import Any

from edgeweave.errors import ConfigError

SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def check_schema(schema: str) -> str:
    """``schema`` when it is a name this store accepts, else ConfigError."""
    if not SCHEMA_RE.match(schema):
        raise ConfigError(
            f"PostgreSQL schema {schema!r} must be 1-40 characters of [a-z0-9_], "
            "not starting with a digit"
        )
    return schema


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
    # per-node sync tables (docs/design/edge-link.md §3, §5) and used join tokens
    """CREATE TABLE IF NOT EXISTS {s}.node_acks (
        node TEXT COLLATE "C" NOT NULL, kind TEXT COLLATE "C" NOT NULL,
        namespace TEXT COLLATE "C" NOT NULL, name TEXT COLLATE "C" NOT NULL,
        rv BIGINT NOT NULL, PRIMARY KEY (node, kind, namespace, name))""",
    """CREATE TABLE IF NOT EXISTS {s}.node_upstream (
        node TEXT PRIMARY KEY, committed_seq BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS {s}.events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, node TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL, object_kind TEXT NOT NULL,
        object_namespace TEXT NOT NULL, object_name TEXT NOT NULL, type TEXT NOT NULL,
        reason TEXT NOT NULL, message TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS events_by_object
        ON {s}.events (object_kind, object_namespace, object_name, id)""",
    "CREATE TABLE IF NOT EXISTS {s}.join_tokens (jti TEXT PRIMARY KEY, exp BIGINT NOT NULL)",
    # reported twin values; rows per (device, property) counted for cheap retention by count
    """CREATE TABLE IF NOT EXISTS {s}.twin_history (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, node TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, property TEXT NOT NULL,
        time_ms BIGINT NOT NULL, value TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS twin_history_by_property
        ON {s}.twin_history (namespace, name, property, time_ms, id)""",
    """CREATE TABLE IF NOT EXISTS {s}.twin_adoptions (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, node TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, items TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '', lease_until DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS {s}.twin_history_points (
        namespace TEXT NOT NULL, name TEXT NOT NULL, property TEXT NOT NULL,
        points BIGINT NOT NULL, PRIMARY KEY (namespace, name, property))""",
]
# the same statements work on a schema made before the sync tables existed (IF NOT EXISTS)
_UNNEST_ACKS = (
    "unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) AS u(kind, namespace, name, rv)"
)
_UNNEST_KEYS = "unnest(%s::text[], %s::text[], %s::text[]) AS k(namespace, name, property)"
_HISTORY_MATCH = "h.namespace = k.namespace AND h.name = k.name AND h.property = k.property"
SYNC_QUERIES = {
    "acked": "SELECT kind, namespace, name, rv FROM {s}.node_acks WHERE node = %s",
    "acks_clear": "DELETE FROM {s}.node_acks WHERE node = %s",
    "upstream_clear": "DELETE FROM {s}.node_upstream WHERE node = %s",
    "acks_upsert": f"""INSERT INTO {{s}}.node_acks (node, kind, namespace, name, rv)
        SELECT %s, u.kind, u.namespace, u.name, u.rv FROM {_UNNEST_ACKS}
        ON CONFLICT (node, kind, namespace, name) DO UPDATE SET rv = EXCLUDED.rv""",  # noqa: S608
    "acks_drop_deleted": f"""DELETE FROM {{s}}.node_acks a USING {_UNNEST_ACKS}
        WHERE a.node = %s AND a.kind = u.kind AND a.namespace = u.namespace
          AND a.name = u.name AND NOT EXISTS (SELECT 1 FROM {{s}}.objects o
            WHERE o.kind = a.kind AND o.namespace = a.namespace AND o.name = a.name)""",  # noqa: S608
    "adoption_insert": (
        "INSERT INTO {s}.twin_adoptions (node, namespace, name, items) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
    ),
    # SKIP LOCKED: replicas claiming at once each get other rows, none waits for another
    "adoptions_claim": """UPDATE {s}.twin_adoptions a SET owner = %s, lease_until = %s
        FROM (SELECT id FROM {s}.twin_adoptions WHERE lease_until <= %s ORDER BY id LIMIT %s
              FOR UPDATE SKIP LOCKED) c
        WHERE a.id = c.id RETURNING a.id, a.node, a.namespace, a.name, a.items""",
    "adoption_delete": "DELETE FROM {s}.twin_adoptions WHERE id = %s",
    "upstream_init": ("INSERT INTO {s}.node_upstream VALUES (%s, 0) ON CONFLICT (node) DO NOTHING"),
    "upstream_lock": "SELECT committed_seq FROM {s}.node_upstream WHERE node = %s FOR UPDATE",
    "upstream_get": "SELECT committed_seq FROM {s}.node_upstream WHERE node = %s",
    "upstream_set": "UPDATE {s}.node_upstream SET committed_seq = %s WHERE node = %s",
    "events_copy": (
        "COPY {s}.events (node, time, object_kind, object_namespace, object_name, type, "
        "reason, message) FROM STDIN"
    ),
    "events_trim": ("DELETE FROM {s}.events WHERE id <= (SELECT max(id) FROM {s}.events) - %s"),
    "add_rv": "UPDATE {s}.meta SET value = value + %s WHERE key = 'rv' RETURNING value",
    "get_many": """SELECT o.kind, o.namespace, o.name, o.json FROM {s}.objects o
        JOIN unnest(%s::text[], %s::text[], %s::text[]) AS u(kind, namespace, name)
        ON o.kind = u.kind COLLATE "C" AND o.namespace = u.namespace COLLATE "C"
          AND o.name = u.name COLLATE "C"
    """,
    "put_many": """WITH u AS (
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[])
          AS u(kind, namespace, name, rv, json)),
      o AS (UPDATE {s}.objects o SET rv = u.rv, json = u.json FROM u
        WHERE o.kind = u.kind COLLATE "C" AND o.namespace = u.namespace COLLATE "C"
          AND o.name = u.name COLLATE "C"),
      l AS (INSERT INTO {s}.changelog (rv, kind, namespace, name, type, json)
        SELECT rv, kind, namespace, name, 'MODIFIED', json FROM u)
    SELECT pg_notify(%s::text, %s::text)""",
    "history_copy": (
        "COPY {s}.twin_history (node, namespace, name, property, time_ms, value) FROM STDIN"
    ),
    # per touched key: how many rows retention by age dropped
    "history_drop_old": f"""WITH d AS (DELETE FROM {{s}}.twin_history h USING {_UNNEST_KEYS}
          WHERE {_HISTORY_MATCH} AND h.time_ms < %s
          RETURNING h.namespace, h.name, h.property)
        SELECT namespace, name, property, count(*) FROM d GROUP BY 1, 2, 3""",  # noqa: S608
    "history_points_add": """INSERT INTO {s}.twin_history_points AS p
        (namespace, name, property, points)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
        ON CONFLICT (namespace, name, property)
        DO UPDATE SET points = GREATEST(0, p.points + EXCLUDED.points)
        RETURNING namespace, name, property, points""",
    "history_drop_oldest": f"""DELETE FROM {{s}}.twin_history WHERE id IN (
        SELECT x.id FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
          AS k(namespace, name, property, excess)
        CROSS JOIN LATERAL (SELECT h.id FROM {{s}}.twin_history h WHERE {_HISTORY_MATCH}
          ORDER BY h.time_ms, h.id LIMIT k.excess) x)""",  # noqa: S608
    "history_points_set": f"""UPDATE {{s}}.twin_history_points h SET points = %s
        FROM {_UNNEST_KEYS} WHERE {_HISTORY_MATCH}""",  # noqa: S608
    "tokens_expire": "DELETE FROM {s}.join_tokens WHERE exp < %s",
    "token_use": (
        "INSERT INTO {s}.join_tokens VALUES (%s, %s) ON CONFLICT (jti) DO NOTHING RETURNING jti"
    ),
}
# One statement per object write, run outside any explicit transaction (its own implicit
# one): bump the counter (its row lock is held to the statement's commit, serialising
# writers, so version order is commit order), write the object, append the change log with
# the same text and NOTIFY. The JSON is ``head || rv || tail`` (see ``encode_json_around_rv``).
# update/delete write only when the row still holds ``expect`` (a row update re-reads the
# newest committed row version), else the change-log json is NULL and the NOT NULL constraint
# fails the statement, undoing the counter bump; the adapter then re-reads and retries.
_BUMP = "c AS (UPDATE {s}.meta SET value = value + 1 WHERE key = 'rv' RETURNING value)"
_LOG = "INSERT INTO {s}.changelog (rv, kind, namespace, name, type, json)"
_KEY = "t.kind = %(kind)s AND t.namespace = %(namespace)s AND t.name = %(name)s"
_JSON = "%(head)s::text || c.value || %(tail)s::text"
QUERIES = {
    "create": f"""WITH {_BUMP},
      o AS (INSERT INTO {{s}}.objects AS t (kind, namespace, name, rv, json)
        SELECT %(kind)s, %(namespace)s, %(name)s, c.value, {_JSON} FROM c
        RETURNING t.rv, t.json),
      l AS ({_LOG}
        SELECT rv, %(kind)s, %(namespace)s, %(name)s, 'ADDED', json FROM o)
    SELECT rv, pg_notify(%(channel)s::text, rv::text) FROM o""",  # noqa: S608
    "update": f"""WITH {_BUMP},
      o AS (UPDATE {{s}}.objects AS t SET rv = c.value, json = {_JSON} FROM c
        WHERE {_KEY} AND t.rv = %(expect)s RETURNING t.json),
      l AS ({_LOG}
        SELECT value, %(kind)s, %(namespace)s, %(name)s, 'MODIFIED',
          (SELECT json FROM o) FROM c)
    SELECT value, pg_notify(%(channel)s::text, value::text) FROM c""",  # noqa: S608
    "delete": f"""WITH {_BUMP},
      o AS (DELETE FROM {{s}}.objects AS t USING c
        WHERE {_KEY} AND t.rv = %(expect)s RETURNING t.rv),
      l AS ({_LOG}
        SELECT value, %(kind)s, %(namespace)s, %(name)s, 'DELETED',
          (SELECT {_JSON} FROM o) FROM c)
    SELECT value, pg_notify(%(channel)s::text, value::text) FROM c""",  # noqa: S608
    "lock_rv": "SELECT value FROM {s}.meta WHERE key = 'rv' FOR UPDATE",
    "current_rv": "SELECT value FROM {s}.meta WHERE key = 'rv'",
    "compacted": "SELECT value FROM {s}.meta WHERE key = 'compacted'",
    "get": "SELECT rv, json FROM {s}.objects WHERE kind = %s AND namespace = %s AND name = %s",
    "changes": """SELECT m.value, c.rv, c.type, c.kind, c.namespace, c.name, c.json
    FROM {s}.meta m LEFT JOIN LATERAL (
        SELECT * FROM {s}.changelog WHERE rv > %s ORDER BY rv LIMIT %s) c ON true
    WHERE m.key = 'compacted' ORDER BY c.rv""",
    "lock_compacted": "SELECT value FROM {s}.meta WHERE key = 'compacted' FOR UPDATE",
    "nth_newest": "SELECT rv FROM {s}.changelog ORDER BY rv DESC LIMIT 1 OFFSET %s",
    "trim": "DELETE FROM {s}.changelog WHERE rv <= %s",
    "set_compacted": "UPDATE {s}.meta SET value = %s WHERE key = 'compacted'",
}


def write_params(
    key: tuple[str, str, str], json: tuple[str, str], channel: str, expect: int = 0
) -> dict[str, Any]:
    """The parameters of a ``create``/``update``/``delete`` statement: the object's key, its
    JSON as (head, tail) around the version, the NOTIFY channel and the version it must have."""
    (kind, namespace, name), (head, tail) = key, json
    return {"kind": kind, "namespace": namespace, "name": name, "head": head, "tail": tail,
            "expect": expect, "channel": channel}  # fmt: skip


def list_query(by_namespace: bool, after: bool, limited: bool) -> str:
    """One page chunk of a list, with the store version read in the same statement (one
    snapshot); parameters: kind[, namespace][, after namespace, after name][, limit]."""
    where = "kind = %s"
    if by_namespace:
        where += " AND namespace = %s"
    if after:
        where += " AND (namespace, name) > (%s, %s)"
    return (
        "SELECT m.value, o.namespace, o.name, o.json FROM {s}.meta m LEFT JOIN LATERAL "  # noqa: S608
        f"(SELECT namespace, name, json FROM {{s}}.objects WHERE {where} "
        f"ORDER BY namespace, name{' LIMIT %s' if limited else ''}) o ON true "
        "WHERE m.key = 'rv' ORDER BY o.namespace, o.name"
    )


# the newest events first; ``{where}`` is built from fixed column names only
EVENTS_LIST_TEMPLATE = (
    "SELECT id, node, time, object_kind, object_namespace, object_name, type, reason, "
    "message FROM {s}.events{where} ORDER BY id DESC LIMIT %s"
)


# a device's reported values, newest first; ``{where}`` is built from fixed column names only
HISTORY_DELETE_TEMPLATE = "DELETE FROM {s}.twin_history WHERE namespace = %s AND name = %s"
HISTORY_DEVICES_TEMPLATE = (
    "SELECT DISTINCT namespace, name FROM {s}.twin_history_points ORDER BY 1, 2"
)
HISTORY_POINTS_DELETE_TEMPLATE = (
    "DELETE FROM {s}.twin_history_points WHERE namespace = %s AND name = %s"
)
HISTORY_LIST_TEMPLATE = (
    "SELECT property, value, time_ms FROM {s}.twin_history "
    "WHERE namespace = %s AND name = %s{where} ORDER BY time_ms DESC, id DESC LIMIT %s"
)
