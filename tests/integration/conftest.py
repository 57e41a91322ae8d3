"""Fixtures shared by the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeweave.cloud.store.base import CloudStore
from edgeweave.edge.outbox import Outbox, open_outbox

OUTBOX_FLUSH_S = 3600.0  # an outbox fixture flushes only when a test asks (or flush_max is hit)


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


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    """An outbox whose timer never flushes: tests synchronise with ``flush()``."""
    box = await open_outbox(tmp_path / "outbox.db", flush_interval_s=OUTBOX_FLUSH_S)
    yield box
    await box.aclose()
