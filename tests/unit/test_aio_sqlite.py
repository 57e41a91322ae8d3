"""SQLiteThread: one connection on one worker thread, transactions, translated errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from edgeweave.aio import sqlite as aio_sqlite
from edgeweave.aio.sqlite import Connection, IntegrityHook, SQLiteThread
from edgeweave.errors import AlreadyExists, ConfigError, StoreError, StoreUnavailable

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


def make(
    path: Path, on_integrity_error: IntegrityHook | None = None, *, inline: bool = False
) -> SQLiteThread:
    return SQLiteThread(
        path,
        name="test store",
        thread_name="edgeweave-test-sqlite",
        pragmas={"journal_mode": "WAL", "synchronous": "NORMAL", "busy_timeout": 100},
        schema=SCHEMA,
        on_integrity_error=on_integrity_error,
        inline_writes=inline,
    )


async def test_runs_on_one_named_worker_with_pragmas_and_schema(tmp_path: Path) -> None:
    sql = make(tmp_path / "sub" / "db.sqlite")
    await sql.open()
    try:

        def probe() -> tuple[str, str, int]:
            db = sql.connection
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            db.execute("INSERT INTO t (k, v) SELECT 'k' || count(*), 1 FROM t")
            count = db.execute("SELECT count(*) FROM t").fetchone()[0]
            return threading.current_thread().name, mode, count

        names = {(await sql.run(probe))[0] for _ in range(3)}
        name, mode, count = await sql.run(probe)
        assert len(names) == 1 and name.startswith("edgeweave-test-sqlite")
        assert name != threading.current_thread().name
        assert mode == "wal"
        assert count == 4
    finally:
        await sql.aclose()


async def test_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    sql = make(tmp_path / "db.sqlite")
    await sql.open()

    def write(k: str, fail: bool) -> None:
        with sql.transaction() as db:
            db.execute("INSERT INTO t VALUES (?, ?)", (k, 1))
            if fail:
                raise ValueError("boom")

    def keys(db: Connection | None = None) -> list[str]:
        return [r[0] for r in (db or sql.connection).execute("SELECT k FROM t ORDER BY k")]

    try:
        await sql.run(write, "a", False)
        with pytest.raises(ValueError, match="boom"):
            await sql.run(write, "b", True)
        assert await sql.run(keys) == ["a"]
        assert not await sql.run(lambda: sql.connection.in_transaction)
    finally:
        await sql.aclose()


async def test_errors_are_translated_with_the_name(tmp_path: Path) -> None:
    sql = make(
        tmp_path / "db.sqlite",
        on_integrity_error=lambda text: AlreadyExists(f"dup: {text}") if "t.k" in text else None,
    )
    await sql.open()

    def run(query: str) -> None:
        sql.connection.execute(query)

    try:
        with pytest.raises(StoreUnavailable, match=r"^test store unavailable: no such table"):
            await sql.run(run, "SELECT * FROM missing")
        await sql.run(run, "INSERT INTO t VALUES ('a', 1)")
        with pytest.raises(AlreadyExists, match=r"^dup: UNIQUE"):
            await sql.run(run, "INSERT INTO t VALUES ('a', 2)")
        with pytest.raises(StoreError, match=r"^test store error: NOT NULL") as info:
            await sql.run(run, "INSERT INTO t VALUES ('b', NULL)")
        assert type(info.value) is StoreError
        with pytest.raises(StoreUnavailable, match=r"^test store unavailable"):
            await sql.run(lambda: sql.call(run, "SELECT * FROM missing"))
    finally:
        await sql.aclose()


async def test_reads_on_the_loop_see_every_committed_write_and_cannot_write(
    tmp_path: Path,
) -> None:
    sql = make(tmp_path / "db.sqlite")

    def value(db: Connection, k: str) -> int | None:
        row = db.execute("SELECT v FROM t WHERE k = ?", (k,)).fetchone()
        return None if row is None else int(row[0])

    def put(k: str, v: int) -> None:
        with sql.transaction() as db:
            db.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (k, v))

    with pytest.raises(StoreUnavailable, match=r"^the test store is not open$"):
        sql.read(value, "a")
    await sql.open()
    try:
        assert sql.read(value, "a") is None
        for v in range(3):
            await sql.run(put, "a", v)
            assert sql.read(value, "a") == v  # on the loop's thread, right after the commit

        def write(db: Connection) -> None:
            db.execute("INSERT INTO t VALUES ('b', 1)")

        with pytest.raises(StoreError, match=r"^test store .*readonly"):
            sql.read(write)
        await sql.run(put, "c", 1)  # a read left nothing open that holds the writer up
        assert sql.read(value, "c") == 1
    finally:
        await sql.aclose()
    with pytest.raises(StoreUnavailable, match=r"^the test store is closed$"):
        sql.read(value, "a")


async def test_closed_and_not_open(tmp_path: Path) -> None:
    sql = make(tmp_path / "db.sqlite")
    with pytest.raises(StoreUnavailable, match=r"^the test store is not open$"):
        await sql.run(lambda: sql.connection)
    await sql.aclose()
    await sql.aclose()  # idempotent
    assert sql.closed
    with pytest.raises(StoreUnavailable, match=r"^the test store is closed$"):
        await sql.run(lambda: None)


async def test_open_failure_is_translated_and_stops_the_worker(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    sql = make(tmp_path / "dir.sqlite")
    with pytest.raises(StoreUnavailable, match=r"^test store unavailable"):
        await sql.open()
    assert sql.closed


def test_bad_pragmas_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bad SQLite pragma"):
        SQLiteThread(tmp_path / "x", name="t", thread_name="t", pragmas={"a; DROP": 1})
    with pytest.raises(ConfigError, match="bad SQLite pragma"):
        SQLiteThread(tmp_path / "x", name="t", thread_name="t", pragmas={"mode": "WAL; x"})


def _insert(sql: SQLiteThread, key: str) -> str:
    with sql.transaction() as db:
        db.execute("INSERT INTO t (k, v) VALUES (?, 1)", (key,))
    return threading.current_thread().name


async def test_inline_writes_run_on_the_loop_only_while_the_worker_is_idle(
    tmp_path: Path,
) -> None:
    sql = make(tmp_path / "db.sqlite", inline=True)
    await sql.open()
    try:
        loop_thread = threading.current_thread().name
        assert await sql.run_inline(_insert, sql, "a") == loop_thread  # idle: right here
        release = threading.Event()
        busy = asyncio.ensure_future(sql.run(release.wait, 5.0))  # the worker is busy
        queued = asyncio.ensure_future(sql.run_inline(_insert, sql, "b"))
        await asyncio.sleep(0)  # one loop turn: both are handed over, neither is done
        assert not queued.done()
        release.set()
        assert await queued != loop_thread  # it went to the worker, after the busy job
        assert await busy is True
        count = await sql.run(lambda: sql.connection.execute("SELECT count(*) FROM t").fetchone())
        assert count == (2,)
        with pytest.raises(StoreError, match=r"^test store error: UNIQUE"):
            await sql.run_inline(_insert, sql, "a")  # translated, as on the worker
    finally:
        await sql.aclose()


async def test_without_inline_writes_run_inline_uses_the_worker(tmp_path: Path) -> None:
    sql = make(tmp_path / "db.sqlite")
    await sql.open()
    try:
        assert await sql.run_inline(_insert, sql, "a") != threading.current_thread().name
    finally:
        await sql.aclose()


async def test_inline_writes_checkpoint_on_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aio_sqlite, "CHECKPOINT_EVERY_COMMITS", 5)
    checkpoints: list[str] = []
    checkpoint = SQLiteThread._checkpoint

    def spy(self: SQLiteThread) -> None:
        checkpoints.append(threading.current_thread().name)
        checkpoint(self)

    monkeypatch.setattr(SQLiteThread, "_checkpoint", spy)
    sql = make(tmp_path / "db.sqlite", inline=True)
    await sql.open()
    try:
        auto = await sql.run(lambda: sql.connection.execute("PRAGMA wal_autocheckpoint"))
        assert auto.fetchone()[0] == 0  # SQLite's own would run on whichever thread commits
        for i in range(12):
            await sql.run_inline(_insert, sql, f"k{i}")
        await sql.run(lambda: None)  # queued after the checkpoints: they have run
        assert len(checkpoints) == 2
        assert all(name.startswith("edgeweave-test-sqlite") for name in checkpoints)
    finally:
        await sql.aclose()
