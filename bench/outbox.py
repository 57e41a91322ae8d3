"""Benchmark of the edge outbox: append rate, local drain rate, and a day of entries surviving
a restart.

Run ``.venv/bin/python bench/outbox.py [--entries N] [--survive-entries M] [--out FILE]``.
Everything happens in a temporary directory that is removed at the end. Prints ONE JSON
document on stdout (progress on stderr):

- ``append``: N appends of ~100-byte JSON payloads through ``Outbox.append`` until all are
  durable, entries/s; beside it the baseline measured in the same run — raw ``sqlite3``
  ``executemany`` of the same rows into the same schema in ONE transaction — and the ratio.
- ``drain``: ``peek`` + ``ack`` in batches of 5,000 until empty, entries/s.
- ``survive_restart``: M entries (default 8,640,000 = 24 h at 100/s) appended, outbox closed
  and reopened; count, first/last seq and the order of everything ``peek`` returns verified.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import log, machine_info, ratio
from edgeweave.edge.outbox import Outbox, open_outbox

DEFAULT_ENTRIES = 1_000_000
DAY_AT_100_PER_S = 8_640_000
DRAIN_BATCH = 5_000
TARGET_APPENDS_PER_S = 200_000
TOPIC = "log"


def payload(i: int) -> dict[str, Any]:
    """About 100 bytes of JSON, like one application log line."""
    return {"app": "default/occupancy-counter", "stream": "stdout", "seq": i, "line": "x" * 23}


def payload_size() -> int:
    return len(json.dumps(payload(1_000_000), separators=(",", ":")))


async def append_all(box: Outbox, n: int, first: int = 0) -> float:
    """Append ``n`` entries and wait until they are durable; returns seconds."""
    body = payload(0)
    start = time.perf_counter()
    for i in range(first, first + n):
        body["seq"] = i  # encoded by append, so reusing the dict is safe
        await box.append(TOPIC, body)
    await box.flush()
    return time.perf_counter() - start


def baseline_rows(n: int) -> Iterator[tuple[int, str, str, int]]:
    encode = json.JSONEncoder(separators=(",", ":")).encode
    body = payload(0)
    for i in range(n):
        body["seq"] = i
        text = encode(body)
        yield (i + 1, TOPIC, text, len(text))


def baseline_insert(path: Path, n: int) -> float:
    """Raw sqlite3: the same schema, rows and encoding, ONE transaction; returns seconds."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT, "
        "payload TEXT NOT NULL, bytes INTEGER NOT NULL)"
    )
    conn.execute("CREATE UNIQUE INDEX s ON outbox (topic, key) WHERE key IS NOT NULL")
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO outbox (seq, topic, payload, bytes) VALUES (?, ?, ?, ?)", baseline_rows(n)
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def drain_all(box: Outbox) -> tuple[int, float]:
    start = time.perf_counter()
    after = 0
    drained = 0
    while entries := await box.peek(after, max_entries=DRAIN_BATCH, max_bytes=1 << 30):
        after = entries[-1].seq
        drained += len(entries)
        await box.ack(after)
    return drained, time.perf_counter() - start


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def bench_append_and_drain(tmp: Path, n: int) -> dict[str, Any]:
    log(f"baseline: raw executemany of {n} rows in one transaction")
    base_s = baseline_insert(tmp / "baseline.db", n)
    results: dict[str, Any] = {}
    for label, full in (("synchronous_full", True), ("synchronous_normal", False)):
        path = tmp / f"append-{label}.db"
        box = await open_outbox(path, synchronous_full=full)
        log(f"append {n} entries ({label})")
        append_s = await append_all(box, n)
        stats = box.statistics()
        drained, drain_s = await drain_all(box)
        await box.aclose()
        assert drained == n, (drained, n)
        results[label] = {
            "appends_per_s": round(n / append_s),
            "flushes": stats.flushes,
            "mean_entries_per_flush": round(n / max(stats.flushes, 1)),
            "drain_entries_per_s": round(n / drain_s),
        }
    full = results["synchronous_full"]
    return {
        "entries": n,
        "payload_bytes": payload_size(),
        "append": {
            "outbox_appends_per_s": full["appends_per_s"],
            "baseline_raw_executemany_rows_per_s": round(n / base_s),
            "ratio_outbox_to_baseline": ratio(full["appends_per_s"], n / base_s),
            "target_appends_per_s": TARGET_APPENDS_PER_S,
            "met": full["appends_per_s"] >= TARGET_APPENDS_PER_S,
        },
        "drain": {
            "batch": DRAIN_BATCH,
            "entries_per_s": full["drain_entries_per_s"],
            "ratio_drain_to_baseline_insert": ratio(full["drain_entries_per_s"], n / base_s),
        },
        "by_synchronous_mode": results,
    }


async def bench_survive_restart(tmp: Path, n: int) -> dict[str, Any]:
    path = tmp / "day.db"
    box = await open_outbox(path)
    log(f"survive: append {n} entries")
    append_s = await append_all(box, n)
    await box.aclose()
    size = file_bytes(path)

    start = time.perf_counter()
    box = await open_outbox(path)
    reopen_s = time.perf_counter() - start
    stats = box.statistics()
    log("survive: reopened; verifying every entry's order")
    start = time.perf_counter()
    after, expected, ordered = 0, 1, True
    while entries := await box.peek(after, max_entries=DRAIN_BATCH, max_bytes=1 << 30):
        for entry in entries:
            ordered = ordered and entry.seq == expected
            expected += 1
        after = entries[-1].seq
    verify_s = time.perf_counter() - start
    next_seq = box.append_nowait("event", {"after": "restart"})
    await box.aclose()
    ok = (
        stats.entries == n
        and (stats.oldest_seq, stats.newest_seq) == (1, n)
        and ordered
        and expected == n + 1
        and next_seq == n + 1
    )
    return {
        "entries": n,
        "append_s": round(append_s, 1),
        "appends_per_s": round(n / append_s),
        "file_bytes": size,
        "bytes_per_entry": round(size / n, 1),
        "reopen_ms": round(reopen_s * 1000, 1),
        "verify_peek_all_s": round(verify_s, 1),
        "count_after_reopen": stats.entries,
        "first_seq": stats.oldest_seq,
        "last_seq": stats.newest_seq,
        "in_order": ordered,
        "seq_after_restart": next_seq,
        "ok": ok,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES)
    parser.add_argument(
        "--survive-entries",
        type=int,
        default=None,
        help="entries for the restart check (default 8,640,000, scaled with --entries)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    survive = args.survive_entries
    if survive is None:
        survive = round(DAY_AT_100_PER_S * args.entries / DEFAULT_ENTRIES)

    tmp = Path(tempfile.mkdtemp(prefix="edgeweave-bench-outbox-"))
    try:
        report = {
            "benchmark": "outbox",
            "command": " ".join(["bench/outbox.py", *sys.argv[1:]]),
            "machine": machine_info(),
            "sqlite_version": sqlite3.sqlite_version,
            "append_and_drain": await bench_append_and_drain(tmp, args.entries),
            "survive_restart": (
                await bench_survive_restart(tmp, survive) if survive > 0 else {"ok": True}
            ),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if report["survive_restart"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
