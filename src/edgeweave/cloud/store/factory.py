"""Picks and opens the state-store adapter named by a URL; the only place that does.

Accepted forms:

- empty / None, ``sqlite://`` or ``sqlite:///`` → SQLite file ``<data_dir>/edgeweave.db``;
- ``sqlite:///abs/path.db`` → that file; ``sqlite://rel/path.db`` → relative to ``data_dir``;
- ``postgresql://...`` or ``postgres://...`` → PostgreSQL; an optional ``schema=NAME`` query
  parameter picks the schema (default: the connection's current schema, usually ``public``)
  and is not passed to the driver.

Each adapter is imported only when chosen, so a SQLite deployment never imports psycopg.
Must not hold configuration beyond the URL: sizing knobs belong to the adapters (retention
bounds are passed through as given).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from edgeweave.cloud.store.base import (
    DEFAULT_TWIN_HISTORY_MAX_AGE_S,
    DEFAULT_TWIN_HISTORY_POINTS,
    CloudStore,
)
from edgeweave.errors import ConfigError

DEFAULT_SQLITE_FILE = "edgeweave.db"
ACCEPTED_FORMS = (
    "'' (SQLite in the data directory), 'sqlite://', 'sqlite:///absolute/path.db', "
    "'postgresql://user@host:port/db[?schema=name]' or 'postgres://...'"
)


async def open_store(
    url: str | None,
    data_dir: Path,
    *,
    changelog_retention: int = 100_000,
    twin_history_points: int = DEFAULT_TWIN_HISTORY_POINTS,
    twin_history_max_age_s: float = DEFAULT_TWIN_HISTORY_MAX_AGE_S,
) -> CloudStore:
    """Open the store named by ``url``; raises ConfigError for an unknown form."""
    url = (url or "").strip()
    retention = {
        "changelog_retention": changelog_retention,
        "twin_history_points": twin_history_points,
        "twin_history_max_age_s": twin_history_max_age_s,
    }
    if not url or url.startswith("sqlite:"):
        from edgeweave.cloud.store.sqlite import open_sqlite_store

        return await open_sqlite_store(
            sqlite_path(url, data_dir),
            changelog_retention=changelog_retention,
            twin_history_points=twin_history_points,
            twin_history_max_age_s=twin_history_max_age_s,
        )
    if url.startswith(("postgresql://", "postgres://")):
        from edgeweave.cloud.store.postgres import open_postgres_store

        conninfo, schema = split_schema(url)
        return await open_postgres_store(conninfo, schema=schema, **retention)
    raise ConfigError(f"store URL {_redact(url)!r} is not one of: {ACCEPTED_FORMS}")


def sqlite_path(url: str, data_dir: Path) -> Path:
    """The database file a ``sqlite:`` URL (or the empty URL) names."""
    if not url:
        return Path(data_dir) / DEFAULT_SQLITE_FILE
    if not url.startswith("sqlite://"):
        raise ConfigError(f"store URL {url!r} is not one of: {ACCEPTED_FORMS}")
    rest = url[len("sqlite://") :]
    if rest in ("", "/"):
        return Path(data_dir) / DEFAULT_SQLITE_FILE
    path = Path(rest)
    return path if path.is_absolute() else Path(data_dir) / path


def split_schema(url: str) -> tuple[str, str | None]:
    """Remove our ``schema`` query parameter from a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = [(key, value) for key, value in query if key != "schema"]
    if len(schemas) > 1:
        raise ConfigError("store URL names the schema more than once")
    conninfo = urlunsplit(parts._replace(query=urlencode(rest)))
    return conninfo, schemas[0] if schemas else None


def _redact(url: str) -> str:
    """``url`` without a password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
