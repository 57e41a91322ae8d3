"""The store factory: which URL opens which adapter, and what it refuses."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edgeweave.cloud.store.factory import open_store, split_schema, sqlite_path
from edgeweave.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "data/edgeweave.db"),
        ("sqlite://", "data/edgeweave.db"),
        ("sqlite:///", "data/edgeweave.db"),
        ("sqlite:///abs/x.db", "/abs/x.db"),
        ("sqlite://rel/x.db", "data/rel/x.db"),
    ],
)
def test_sqlite_urls_name_the_expected_file(url: str, expected: str) -> None:
    assert sqlite_path(url, Path("data")) == Path(expected)


def test_the_schema_parameter_is_taken_out_of_a_postgres_url() -> None:
    assert split_schema("postgresql://u@h:5432/db?schema=s1&sslmode=disable") == (
        "postgresql://u@h:5432/db?sslmode=disable",
        "s1",
    )
    assert split_schema("postgres://u@h/db") == ("postgres://u@h/db", None)


async def test_no_url_opens_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    store = await open_store(None, tmp_path / "data")
    try:
        assert type(store).__name__ == "SQLiteStore"
        assert (tmp_path / "data" / "edgeweave.db").exists()
    finally:
        await store.aclose()


def test_opening_a_sqlite_store_does_not_import_psycopg(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from edgeweave.cloud.store.factory import open_store\n"
        "async def main():\n"
        f"    store = await open_store('sqlite://', Path({str(tmp_path)!r}))\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
        "assert 'psycopg' not in sys.modules, 'psycopg was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


async def test_a_postgres_url_opens_the_postgres_store_in_its_schema(postgres_url: str) -> None:
    from edgeweave.cloud.store.postgres import drop_postgres_schema

    schema = f"ew_test_{uuid.uuid4().hex[:12]}"
    store = await open_store(f"{postgres_url}?schema={schema}", Path("unused"))
    try:
        assert type(store).__name__ == "PostgresStore"
        assert await store.current_resource_version() == 0
    finally:
        await store.aclose()
        await drop_postgres_schema(postgres_url, schema)


async def test_without_a_schema_the_postgres_store_uses_the_search_path(postgres_url: str) -> None:
    from edgeweave.cloud.store.postgres import drop_postgres_schema, open_postgres_store

    schema = f"ew_test_{uuid.uuid4().hex[:12]}"
    creator = await open_postgres_store(postgres_url, schema=schema)  # creates the schema
    await creator.create({"kind": "App", "metadata": {"name": "a", "namespace": "default"}})
    await creator.aclose()
    store = await open_store(f"{postgres_url}?options=-csearch_path%3D{schema}", Path("unused"))
    try:
        assert (await store.get("App", "default", "a"))["metadata"]["name"] == "a"
    finally:
        await store.aclose()
        await drop_postgres_schema(postgres_url, schema)


@pytest.mark.parametrize("url", ["mysql://x/y", "redis://h", "/some/file.db", "sqlite:relative"])
async def test_an_unknown_store_url_raises_config_error_naming_the_accepted_forms(
    url: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        await open_store(url, tmp_path)


async def test_the_password_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        await open_store("mysql://user:s3cret@host/db", tmp_path)
    assert "s3cret" not in str(info.value)
