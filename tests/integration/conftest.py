"""Fixtures shared by the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeweave.cloud.store.base import CloudStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CloudStore]:
    """A fresh cloud store of each kind: a SQLite file, a PostgreSQL schema (dropped after).
    A test module may define its own ``store`` instead."""
    if request.param == "sqlite":
        from edgeweave.cloud.store.sqlite import open_sqlite_store

        s: CloudStore = await open_sqlite_store(tmp_path / "store.db")
        try:
            yield s
        finally:
            await s.aclose()
        return
    url: str = request.getfixturevalue("postgres_url")
    from edgeweave.cloud.store.postgres import drop_postgres_schema, open_postgres_store

    schema = f"ew_test_{uuid.uuid4().hex[:12]}"
    pg: CloudStore = await open_postgres_store(url, schema=schema)
    try:
        yield pg
    finally:
        await pg.aclose()
        await drop_postgres_schema(url, schema)
