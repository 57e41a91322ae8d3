"""One SQLite connection owned by one dedicated worker thread, awaited from asyncio.

What it is for: the plumbing every SQLite adapter of edgeweave needs and would otherwise
re-implement. :class:`SQLiteThread` opens a file on its own single worker thread (creating the
directory, applying the given pragmas, running the schema script), runs functions there with
:meth:`SQLiteThread.run`, gives those functions the connection
(:attr:`SQLiteThread.connection`) and ``BEGIN IMMEDIATE``/``COMMIT``/``ROLLBACK`` transactions
(:meth:`SQLiteThread.transaction`), runs point reads on the event loop itself with a second,
read-only connection (:meth:`SQLiteThread.read`, WAL files only), translates :mod:`sqlite3`
errors into :class:`~edgeweave.errors.StoreError` (``StoreUnavailable`` for operational errors:
locked, busy, I/O, disk full) with messages naming the caller's store, and shuts the thread
down in :meth:`SQLiteThread.aclose`. :data:`Connection` is the connection type for annotations,
so the users need not import :mod:`sqlite3` themselves.

With ``inline_writes`` a short write may run on the event loop's thread instead
(:meth:`SQLiteThread.run_inline`): only while the worker is idle, so the connection is never
used by two threads at once and writes keep their order. It saves the two thread hops
(a wake-up each way, and the GIL changing hands) that cost more than a small transaction in
WAL mode with ``synchronous=NORMAL``, which does not fsync at commit. SQLite's own
checkpoints would then run on the loop's thread at some commit, so they are turned off and
the worker runs a passive one every :data:`CHECKPOINT_EVERY_COMMITS` commits.

Must not: know what is stored (no tables, no SQL beyond pragmas and transaction control), run
database work on any thread but its worker (except :meth:`~SQLiteThread.read`'s point reads and
:meth:`~SQLiteThread.run_inline`'s writes while the worker is idle), let a :mod:`sqlite3`
exception out of :meth:`~SQLiteThread.run`, :meth:`~SQLiteThread.run_inline`,
:meth:`~SQLiteThread.open`, :meth:`~SQLiteThread.read`, :meth:`~SQLiteThread.call` or
:meth:`~SQLiteThread.aclose`, or import edgeweave beyond :mod:`edgeweave.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, TypeVarTuple, Unpack

from edgeweave.errors import ConfigError, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

Connection: TypeAlias = sqlite3.Connection
"""The connection type, for annotations of functions that run on the worker."""
PragmaValue: TypeAlias = int | str
READ_BUSY_TIMEOUT_MS = 100
"""How long a point read on the event loop waits for a lock (only WAL recovery takes one)."""
IntegrityHook: TypeAlias = Callable[[str], StoreError | None]
"""Maps the text of a constraint violation to a more specific error (None: the default)."""
CHECKPOINT_EVERY_COMMITS = 256
"""With inline writes: commits between two passive WAL checkpoints on the worker (SQLite's
automatic one, every 1000 WAL pages, is off)."""


class SQLiteThread:
    """A SQLite file behind one worker thread. ``name`` names the store in error messages
    (``"edge store"`` gives "edge store unavailable: ...", "the edge store is closed").

    The constructor does no I/O; :meth:`open` connects. :meth:`run` and :meth:`aclose` are
    called from one event loop; :attr:`connection`, :meth:`transaction` and :meth:`call` only
    from functions running on the worker."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        thread_name: str,
        pragmas: Mapping[str, PragmaValue],
        schema: str = "",
        cached_statements: int = 128,
        on_integrity_error: IntegrityHook | None = None,
        inline_writes: bool = False,
    ) -> None:
        for key, value in pragmas.items():
            if not key.isidentifier() or not (isinstance(value, int) or value.isidentifier()):
                raise ConfigError(f"{name}: bad SQLite pragma {key} = {value!r}")
        self.path = Path(path)
        self.name = name
        self._pragmas = dict(pragmas)
        self._schema = schema
        self._cached_statements = cached_statements
        self._on_integrity_error = on_integrity_error
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # the event loop's, for point reads
        self._inline = inline_writes
        self._last: Future[Any] | None = None  # the newest job handed to the worker
        self._loop_thread: int | None = None
        self._commits = 0  # since the last checkpoint (inline writes only)
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    async def open(self) -> None:
        """Connect on the worker: directory, file, pragmas, schema. On failure the worker is
        shut down and the error raised (translated)."""
        self._loop_thread = threading.get_ident()
        try:
            await self.run(self._connect)
        except BaseException:
            self._closed = True
            self._executor.shutdown(wait=True)
            raise

    async def run(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """``fn(*args)`` on the worker thread; a sqlite3 error comes out translated."""
        if self._closed:
            raise StoreUnavailable(f"the {self.name} is closed")
        try:
            job = self._executor.submit(fn, *args)
            self._last = job
            return await asyncio.wrap_future(job)
        except sqlite3.Error as e:
            raise self._translate(e) from e
        finally:
            self._maybe_checkpoint()

    async def run_inline(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """``fn(*args)`` right here, on the event loop's thread, when the worker is idle (no
        job queued or running); otherwise on the worker, after what is queued. For short
        writes only: the loop waits for ``fn``. Without ``inline_writes``, :meth:`run`."""
        last = self._last
        if not self._inline or (last is not None and not last.done()):
            return await self.run(fn, *args)
        if self._closed:
            raise StoreUnavailable(f"the {self.name} is closed")
        try:
            return fn(*args)
        except sqlite3.Error as e:
            raise self._translate(e) from e
        finally:
            self._maybe_checkpoint()

    def in_loop_thread(self) -> bool:
        """True on the event loop's thread (a function run inline), False on the worker."""
        return threading.get_ident() == self._loop_thread

    def submit(self, fn: Callable[[Unpack[Ts]], object], *args: *Ts, what: str) -> None:
        """From the event loop: ``fn(*args)`` on the worker, not awaited (housekeeping); a
        failure is logged naming ``what``."""
        if self._closed:
            return
        job = self._executor.submit(fn, *args)
        self._last = job

        def done(job: Future[object]) -> None:
            error = job.exception()
            if error is not None:
                shown = self._translate(error) if isinstance(error, sqlite3.Error) else error
                log.warning("%s: %s failed: %s", self.name, what, shown)

        job.add_done_callback(done)

    def _maybe_checkpoint(self) -> None:
        if self._inline and self._commits >= CHECKPOINT_EVERY_COMMITS and not self._closed:
            self._commits = 0
            self.submit(self._checkpoint, what="WAL checkpoint")

    def _checkpoint(self) -> None:
        self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def read(self, fn: Callable[[Connection, Unpack[Ts]], T], *args: *Ts) -> T:
        """``fn(reader, *args)`` right here, on the event loop's thread, with a second,
        read-only connection: for point reads by key, which cost less than the hop to the
        worker and back. Only for a file in WAL mode, where a reader sees every committed
        write and neither waits for the writer nor makes it wait (the statement must be
        finished when ``fn`` returns). A sqlite3 error comes out translated."""
        if self._closed:
            raise StoreUnavailable(f"the {self.name} is closed")
        try:
            reader = self._reader
            if reader is None:
                reader = self._reader = self._connect_reader()
            return fn(reader, *args)
        except sqlite3.Error as e:
            raise self._translate(e) from e

    def _connect_reader(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable(f"the {self.name} is not open")
        conn = sqlite3.connect(
            self.path, isolation_level=None, cached_statements=self._cached_statements
        )
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_MS}")
        except BaseException:
            conn.close()
            raise
        return conn

    def call(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        """On the worker: ``fn(*args)`` right here, a sqlite3 error translated, so the caller
        can handle a failure of secondary work (e.g. housekeeping after a commit)."""
        try:
            return fn(*args)
        except sqlite3.Error as e:
            raise self._translate(e) from e

    @property
    def connection(self) -> Connection:
        """The worker's connection (worker thread only)."""
        if self._conn is None:
            raise StoreUnavailable(f"the {self.name} is not open")
        return self._conn

    @contextmanager
    def transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[Connection]:
        """On the worker (or in a function run inline): a transaction committed when the
        block ends, else rolled back."""
        db = self.connection
        db.execute(begin)
        try:
            yield db
            db.execute("COMMIT")
            self._commits += 1
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    async def aclose(self) -> None:
        """Close the connection and stop the worker; later calls of :meth:`run` raise
        ``StoreUnavailable``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        except sqlite3.Error as e:
            raise self._translate(e) from e
        finally:
            self._executor.shutdown(wait=True)

    # ---- worker thread --------------------------------------------------------------------

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            cached_statements=self._cached_statements,
            check_same_thread=not self._inline,  # inline: never two threads at once
        )
        try:
            for key, value in self._pragmas.items():
                conn.execute(f"PRAGMA {key} = {value}")
            if self._inline:
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # the worker checkpoints
            if self._schema:
                conn.executescript(self._schema)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _translate(self, e: sqlite3.Error) -> StoreError:
        text = str(e)
        if isinstance(e, sqlite3.IntegrityError) and self._on_integrity_error is not None:
            specific = self._on_integrity_error(text)
            if specific is not None:
                return specific
        if isinstance(e, sqlite3.OperationalError):
            return StoreUnavailable(f"{self.name} unavailable: {text}")
        return StoreError(f"{self.name} error: {text}")
