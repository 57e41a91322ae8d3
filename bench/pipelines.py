"""Benchmark of the pipeline engine core: datum planning, a job end to end, a process per
datum, batched datums, chunking.

Run ``.venv/bin/python bench/pipelines.py [--datums N] [--process-datums M] [--out FILE]``.
Everything happens in a temporary directory removed at the end. Prints ONE JSON document on
stdout (progress on stderr):

- ``skip``: a repo of N files (default 100,000) under glob ``/*`` — N datums, all done by the
  previous job. Planning the next job after one file was added (or changed): the incremental
  plan (what jobs use) and, for comparison, the full plan (enumerate and hash every datum, the
  fallback), each as µs per unchanged datum; the same for a cross (N images by 1 model) and a
  join (N keys). Baseline in the same run: a plain loop doing one dict lookup and one string
  comparison per datum, the least a skip can cost in Python. Target: ≤ 10 µs per unchanged
  datum.
- ``end_to_end``: one new file in an N-file repo, from starting the input commit to the
  finished output commit, through ``JobRunner.run_job`` with a real process for the datum.
  The previous job's state (its datum history and its N-file output commit) is seeded as the
  previous job would have left it, rather than produced by running N processes. Target ≤ 2 s.
- ``process_per_datum``: M datums (default 200) of one small file each, transform
  ``cp "$images" /pfs/out/``, through ``run_job``: wall time per datum (materialise, spawn,
  wait, collect, upload, record). Baseline: the same command spawned M times with asyncio
  and nothing else. Target ≤ 20 ms per datum.
- ``batched``: B datums (default 1,000) of one small file each through ``run_job`` with
  ``datum_batching: true``: one Python process copies each datum's file to ``$PFS/out`` and
  answers ``ok`` (the datum-per-line protocol, docs/pipelines.md). Baseline in the same run:
  a plain Python loop doing the same work (read the file, write it to an output directory) B
  times. Overhead per datum = batched per datum - baseline per datum. Target ≤ 1 ms.
- ``chain``: what a 10-step task DAG would run on today — 10 pipelines in a chain on one
  host's scheduler (the same ``Scheduler``, job runner and job store as the cloud and edge
  hosts), step 1 reading a ``start`` repo, step k+1 reading step k's output with glob ``/``,
  each step one process writing a marker to ``$PFS/out``. One file put into ``start``, then
  ``wait_idle``. Task-to-task latency = a step's job start minus its upstream step's job end
  (job records), and the period from one step's end to the next one's end (including its one
  process). Target ≤ 50 ms task to task. (A step input type and empty-datum steps are not built:
  docs/pipelines.md.)
- ``dag``: the same 10-step chain as a task DAG (``Workflow``, the cloud's run path without
  HTTP) and a diamond; task-to-task latency per hop, engine and process level, against a
  baseline of the bare processes (``bench/pipelines_dag.py``, which also runs it alone).
- ``chunking``: 64 MB of random bytes chunked (MB/s) beside sha256 of the same bytes, and
  ``put_file_from`` of that file (chunk, hash, write chunk files with fsync).
- ``filter_uplink``: F frames (default 200, 32-256 KiB of random bytes, one in ten marked
  "person") through a Filter (``grep -q person``, a process per datum) on a node's store, then
  its output commit delivered to a second store the way a Merger delivers it (the manifest
  posted twice — ``/missing`` and ``/commit`` — plus the chunks the destination lacks).
  Uplink payload bytes (manifest bodies + chunk bytes; HTTP/TLS framing not counted) against
  the bytes the Filter passed, measured in the same run. Target: ≤ 2 % overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import log, machine_info, ratio, source_info, target
from edgeweave.aio.tasks import open_supervisor
from edgeweave.models.pipelines import Input
from edgeweave.pipelines.chunks import chunk_bytes
from edgeweave.pipelines.datums import enumerate_datums
from edgeweave.pipelines.hosting import open_host_stores
from edgeweave.pipelines.incremental import plan_incremental
from edgeweave.pipelines.jobs import JobResult, JobRunner
from edgeweave.pipelines.mountns import probe_mount_namespace
from edgeweave.pipelines.plan import DatumHistory, DatumRecord, DatumState, plan_datums
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.scheduler import Scheduler
from edgeweave.pipelines.spec import PipelineDoc, parse_pipeline_specs
from edgeweave.pipelines.trees import FileTree
from pipelines_dag import bench_dag

DEFAULT_DATUMS = 100_000
DEFAULT_PROCESS_DATUMS = 200
DEFAULT_FILTER_FRAMES = 200
SKIP_TARGET_US = 10.0
END_TO_END_TARGET_S = 2.0
PROCESS_TARGET_MS = 20.0
DEFAULT_BATCHED_DATUMS = 1000
BATCHED_TARGET_MS = 1.0
CHAIN_STEPS = 10
CHAIN_TARGET_MS = 50.0
BATCHED_CODE = """
import json, os, shutil, sys
for line in sys.stdin:
    d = json.loads(line)
    shutil.copyfile(d["images"], os.path.join(d["PFS"], "out", os.path.basename(d["images"])))
    print("ok", flush=True)
"""
CHUNK_MB = 64
COPY = ["sh", "-c", 'cp "$images" "$PFS"/out/']


def digest(i: int) -> str:
    return hashlib.sha256(b"%d" % i).hexdigest()


def history_of(input: Input, trees: dict[tuple[str, str], FileTree], version: str) -> DatumHistory:
    datums = enumerate_datums(input, trees, version)
    return DatumHistory(
        version,
        {d.id: DatumRecord(d.hash, DatumState.SUCCESS, d.identity) for d in datums},
    )


def time_plans(
    name: str,
    spec: dict[str, Any],
    before: dict[tuple[str, str], FileTree],
    after: dict[tuple[str, str], FileTree],
    changed: dict[tuple[str, str], list[str]],
) -> dict[str, Any]:
    input = Input.model_validate(spec)
    history = history_of(input, before, "v1")
    start = time.perf_counter()
    inc = plan_incremental(input, after, changed, history, "v1")
    inc_s = time.perf_counter() - start
    assert inc is not None
    start = time.perf_counter()
    full = plan_datums(enumerate_datums(input, after, "v1"), history)
    full_s = time.perf_counter() - start
    assert sorted(d.id for d in inc.run) == sorted(d.id for d in full.run)
    unchanged = inc.skipped
    out = {
        "datums": inc.total,
        "ran": len(inc.run),
        "skipped": unchanged,
        "incremental_ms": round(inc_s * 1000, 3),
        "incremental_us_per_unchanged_datum": round(inc_s * 1e6 / unchanged, 4),
        "full_ms": round(full_s * 1000, 1),
        "full_us_per_unchanged_datum": round(full_s * 1e6 / unchanged, 3),
    }
    log(f"skip/{name}: {out}")
    return out


def bench_skip(n: int) -> dict[str, Any]:
    key, model, right = ("images", "master"), ("model", "master"), ("right", "master")
    entries = [(f"/f{i:07d}.txt", digest(i), 10) for i in range(n)]
    base = FileTree.from_entries(entries)
    added = FileTree.from_entries([*entries, ("/new.txt", digest(-1), 3)])
    modified = FileTree.from_entries([*entries[:-1], (entries[-1][0], digest(-2), 10)])
    models = FileTree.from_entries([("/model.bin", digest(-3), 100)])
    rights = FileTree.from_entries((f"/f{i:07d}.csv", digest(i + n), 10) for i in range(n))
    pfs = {"pfs": {"repo": "images", "glob": "/*"}}
    cross = {"cross": [pfs, {"pfs": {"repo": "model", "glob": "/"}}]}
    join = {
        "join": [
            {"pfs": {"repo": "images", "glob": "/(*).txt", "join_on": "$1"}},
            {"pfs": {"repo": "right", "glob": "/(*).csv", "join_on": "$1"}},
        ]
    }
    last = entries[-1][0]
    report = {
        "pfs_one_file_added": time_plans(
            "pfs added", pfs, {key: base}, {key: added}, {key: ["/new.txt"]}
        ),
        "pfs_one_file_changed": time_plans(
            "pfs changed", pfs, {key: base}, {key: modified}, {key: [last]}
        ),
        "cross_one_file_added": time_plans(
            "cross added",
            cross,
            {key: base, model: models},
            {key: added, model: models},
            {key: ["/new.txt"]},
        ),
        "join_one_file_changed": time_plans(
            "join changed",
            join,
            {key: base, right: rights},
            {key: modified, right: rights},
            {key: [last]},
        ),
    }
    lookup = {d: d for _, d, _ in entries}
    start = time.perf_counter()
    same = sum(1 for _, d, _ in entries if lookup.get(d) == d)
    baseline_us = (time.perf_counter() - start) * 1e6 / n
    assert same == n
    incremental = report["pfs_one_file_added"]["incremental_us_per_unchanged_datum"]
    full = report["pfs_one_file_added"]["full_us_per_unchanged_datum"]
    report["baseline_dict_lookup_us_per_datum"] = round(baseline_us, 4)
    report["ratio_full_plan_to_baseline"] = ratio(full, baseline_us)
    report["targets"] = [
        target(incremental, SKIP_TARGET_US, "us", "skip cost per unchanged datum (incremental)"),
        target(full, SKIP_TARGET_US, "us", "skip cost per unchanged datum (full plan fallback)"),
    ]
    return report


def pipeline(name: str, repo: str = "images", glob: str = "/*") -> PipelineDoc:
    doc = {
        "pipeline": {"name": name},
        "transform": {"cmd": COPY},
        "input": {"pfs": {"repo": repo, "glob": glob}},
    }
    return parse_pipeline_specs(json.dumps(doc))[0]


async def put_commit(repos: Repos, repo: str, files: list[tuple[str, bytes]], batch: int) -> str:
    commit = await repos.start_commit(repo)
    for i in range(0, len(files), batch):
        await repos.put_files(commit.id, files[i : i + batch])
    return (await repos.finish_commit(commit.id)).id


async def bench_end_to_end(tmp: Path, n: int) -> dict[str, Any]:
    async with open_repos(tmp / "e2e") as repos:
        started = time.perf_counter()
        await repos.create_repo("images")
        files = [(f"/f{i:07d}.txt", b"%d" % i) for i in range(n)]
        images = await put_commit(repos, "images", files, 10_000)
        # seed the previous job: the output commit and the datum history it would have left
        doc = pipeline("copy")
        await repos.create_repo("copy")
        output = await repos.start_commit("copy", origin="auto")
        for i in range(0, n, 10_000):
            await repos.put_files(output.id, files[i : i + 10_000])
        await repos.finish_commit(output.id)
        trees = {("images", "master"): await repos.tree(images)}
        input = doc.pipeline.spec.input
        history = DatumHistory(doc.version)
        for d in enumerate_datums(input, trees, doc.version):
            record = DatumRecord(d.hash, DatumState.SUCCESS, d.identity, (d.parts[0].match.path,))
            history.record(d.id, record)
        seeded = {("images", "master"): images}
        previous = JobResult("seed", "copy", "success", seeded, history, output_commit=output.id)
        seed_s = time.perf_counter() - started
        log(f"end_to_end: seeded {n} files and their outputs in {seed_s:.1f} s")
        jobs = JobRunner(repos, DatumRunner(tmp / "work", repos))
        samples = []
        for i in range(3):
            start = time.perf_counter()
            commit = await repos.start_commit("images")
            await repos.put_file(commit.id, f"/new-{i}.txt", b"new")
            await repos.finish_commit(commit.id)
            job = await jobs.run_job(doc, previous)
            elapsed = time.perf_counter() - start
            assert job.state == "success" and job.processed == 1, job.error
            assert job.incremental and job.skipped == n + i
            samples.append(elapsed)
            previous = job
            log(f"end_to_end: one new file processed in {elapsed:.3f} s")
        out_tree = await repos.tree(previous.output_commit or "")
        assert len(out_tree) == n + 3
    best = min(samples)
    return {
        "files": n,
        "seed_s": round(seed_s, 1),
        "samples_s": [round(s, 3) for s in samples],
        "targets": [target(round(max(samples), 3), END_TO_END_TARGET_S, "s", "one new file")],
        "best_s": round(best, 3),
    }


async def bench_process_per_datum(tmp: Path, m: int) -> dict[str, Any]:
    async with open_repos(tmp / "proc") as repos:
        await repos.create_repo("images")
        await put_commit(repos, "images", [(f"/f{i:05d}", b"x" * 100) for i in range(m)], m)
        jobs = JobRunner(repos, DatumRunner(tmp / "work-proc", repos))
        start = time.perf_counter()
        job = await jobs.run_job(pipeline("copy"))
        per_datum_ms = (time.perf_counter() - start) * 1000 / m
        assert job.state == "success" and job.processed == m, job.error
    sample = tmp / "sample.txt"
    sample.write_bytes(b"x" * 100)
    (tmp / "out").mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "images": str(sample), "PFS": str(tmp)}
    start = time.perf_counter()
    for _ in range(m):
        proc = await asyncio.create_subprocess_exec(*COPY, env=env)
        await proc.wait()
    baseline_ms = (time.perf_counter() - start) * 1000 / m
    out = {
        "datums": m,
        "per_datum_ms": round(per_datum_ms, 2),
        "baseline_plain_spawn_ms": round(baseline_ms, 2),
        "overhead_ms": round(per_datum_ms - baseline_ms, 2),
        "ratio_to_plain_spawn": ratio(per_datum_ms, baseline_ms),
        "targets": [target(round(per_datum_ms, 2), PROCESS_TARGET_MS, "ms", "per datum")],
    }
    # as root on Linux each datum also gets its own mount namespace (/pfs, hidden data dir)
    (tmp / "hidden").mkdir(exist_ok=True)  # as the agent's data dir would be
    ns, why = await probe_mount_namespace("auto", [tmp / "hidden"])
    out["mount_namespace"] = why
    if ns is not None:
        async with open_repos(tmp / "proc-ns") as repos:
            await repos.create_repo("images")
            await put_commit(repos, "images", [(f"/f{i:05d}", b"x" * 100) for i in range(m)], m)
            jobs = JobRunner(repos, DatumRunner(tmp / "work-proc-ns", repos, namespace=ns))
            start = time.perf_counter()
            job = await jobs.run_job(pipeline("copy"))
            ns_ms = (time.perf_counter() - start) * 1000 / m
            assert job.state == "success" and job.processed == m, job.error
        out["per_datum_ms_mount_namespace"] = round(ns_ms, 2)
        out["targets"].append(
            target(round(ns_ms, 2), PROCESS_TARGET_MS, "ms", "per datum, mount namespace")
        )
    log(f"process_per_datum: {out}")
    return out


async def bench_batched(tmp: Path, b: int) -> dict[str, Any]:
    code = tmp / "batched.py"
    code.write_text(BATCHED_CODE)
    doc = {
        "pipeline": {"name": "batched"},
        "transform": {"cmd": [sys.executable, str(code)]},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "datum_batching": True,
    }
    files = [(f"/f{i:05d}", b"x" * 100) for i in range(b)]
    async with open_repos(tmp / "batched") as repos:
        await repos.create_repo("images")
        await put_commit(repos, "images", files, b)
        jobs = JobRunner(repos, DatumRunner(tmp / "work-batched", repos))
        start = time.perf_counter()
        job = await jobs.run_job(parse_pipeline_specs(json.dumps(doc))[0])
        per_datum_ms = (time.perf_counter() - start) * 1000 / b
        assert job.state == "success" and job.processed == b, job.error
    src, dst = tmp / "loop-in", tmp / "loop-out"
    src.mkdir()
    dst.mkdir()
    for path, data in files:
        (src / path.lstrip("/")).write_bytes(data)
    start = time.perf_counter()
    for path, _ in files:  # the same work as the user's code, in a plain loop
        name = path.lstrip("/")
        shutil.copyfile(src / name, dst / name)
    baseline_ms = (time.perf_counter() - start) * 1000 / b
    overhead_ms = per_datum_ms - baseline_ms
    out = {
        "datums": b,
        "per_datum_ms": round(per_datum_ms, 3),
        "baseline_plain_loop_ms": round(baseline_ms, 3),
        "overhead_ms": round(overhead_ms, 3),
        "ratio_to_plain_loop": ratio(per_datum_ms, baseline_ms),
        "targets": [target(round(overhead_ms, 3), BATCHED_TARGET_MS, "ms", "batched overhead")],
    }
    log(f"batched: {out}")
    return out


async def bench_chain(tmp: Path, steps: int = CHAIN_STEPS) -> dict[str, Any]:
    statuses: list[str] = []

    async def on_status(namespace: str, name: str, status: dict[str, Any]) -> None:
        statuses.append(name)

    async with open_host_stores(tmp / "chain") as (repos, store), open_supervisor("b") as sup:
        runner = JobRunner(repos, DatumRunner(tmp / "chain" / "work", repos))
        scheduler = Scheduler(repos, store, runner, sup, max_running_jobs=2, on_status=on_status)
        await repos.create_repo("start")
        names = [f"step-{i:02d}" for i in range(1, steps + 1)]
        for i, name in enumerate(names):
            doc = {
                "pipeline": {"name": name},
                "transform": {"cmd": ["sh", "-c", f'echo done > "$PFS/out/{name}"']},
                "input": {"pfs": {"repo": names[i - 1] if i else "start", "glob": "/"}},
            }
            await scheduler.upsert("default", name, parse_pipeline_specs(json.dumps(doc))[0], 1, "")
        await scheduler.wait_idle(names)  # nothing to run yet: no input commits
        start_wall = time.time()
        start = time.perf_counter()
        commit = await repos.start_commit("start")
        await repos.put_file(commit.id, "/go", b"go")
        await repos.finish_commit(commit.id)
        scheduler.commit_finished("start")
        await scheduler.wait_idle(names)
        total_ms = (time.perf_counter() - start) * 1000
        jobs = []
        for name in names:
            listed = await store.list_jobs(pipeline=name)
            assert len(listed) == 1 and listed[0].state == "success", listed
            jobs.append(listed[0])
    ends = [j.finished_at or 0.0 for j in jobs]
    gaps = [(b.started_at - a) * 1000 for a, b in zip(ends, jobs[1:], strict=False)]
    periods = [(b - a) * 1000 for a, b in itertools.pairwise(ends)]
    out = {
        "steps": steps,
        "total_ms": round(total_ms, 1),
        "first_start_after_put_ms": round((jobs[0].started_at - start_wall) * 1000, 1),
        "task_to_task_ms": {"mean": round(sum(gaps) / len(gaps), 1), "max": round(max(gaps), 1)},
        "step_period_ms": {
            "mean": round(sum(periods) / len(periods), 1),
            "max": round(max(periods), 1),
        },
        "targets": [target(round(max(gaps), 1), CHAIN_TARGET_MS, "ms", "task to task (max)")],
    }
    log(f"chain: {out}")
    return out


async def bench_chunking(tmp: Path) -> dict[str, Any]:
    data = random.Random(7).randbytes(CHUNK_MB * 1024 * 1024)
    start = time.perf_counter()
    chunks = chunk_bytes(data)
    chunk_s = time.perf_counter() - start
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    sha_s = time.perf_counter() - start
    source = tmp / "big.bin"
    source.write_bytes(data)
    async with open_repos(tmp / "chunking") as repos:
        await repos.create_repo("big")
        commit = await repos.start_commit("big")
        start = time.perf_counter()
        await repos.put_file_from(commit.id, "/big.bin", source)
        put_s = time.perf_counter() - start
    out = {
        "megabytes": CHUNK_MB,
        "chunks": len(chunks),
        "mean_chunk_bytes": len(data) // len(chunks),
        "chunk_mb_per_s": round(CHUNK_MB / chunk_s, 1),
        "baseline_sha256_mb_per_s": round(CHUNK_MB / sha_s, 1),
        "put_file_mb_per_s": round(CHUNK_MB / put_s, 1),
    }
    log(f"chunking: {out}")
    return out


async def bench_filter_uplink(tmp: Path, frames: int) -> dict[str, Any]:
    rng = random.Random(11)
    files = []
    for i in range(frames):
        body = rng.randbytes(rng.randint(32 * 1024, 256 * 1024))
        marker = b"person" if i % 10 == 0 else b"nobody"
        files.append((f"/frame-{i:05d}.raw", marker + body))
    doc = {
        "pipeline": {"name": "people"},
        "transform": {"cmd": ["sh", "-c", 'head -c 6 "$frames" | grep -q person']},
        "input": {"pfs": {"repo": "frames", "glob": "/*"}},
        "pattern": {"filter": {"dropCodes": [1]}},
    }
    spec = parse_pipeline_specs(json.dumps(doc))[0]
    async with open_repos(tmp / "node") as node, open_repos(tmp / "cloud") as cloud:
        await node.create_repo("frames")
        await put_commit(node, "frames", files, 50)
        jobs = JobRunner(node, DatumRunner(tmp / "work-filter", node))
        start = time.perf_counter()
        job = await jobs.run_job(spec)
        job_s = time.perf_counter() - start
        assert job.state == "success" and job.output_commit is not None, job.error
        passed = [d for d in job.datums if d.filtered == "passed"]
        bytes_in = sum(d.bytes_in for d in job.datums)
        bytes_passed = sum(d.bytes_in for d in passed)
        manifest = await node.manifest(job.output_commit)
        manifest_size = len(json.dumps(manifest.as_json()).encode())
        held = await cloud.held_chunks(manifest.chunk_digests())
        missing = [d for d in manifest.chunk_digests() if d not in held]
        chunk_bytes_up = 0
        for digest in missing:
            data = await node.read_chunk(digest)
            chunk_bytes_up += len(data)
            await cloud.receive_chunks([(digest, data)])
        await cloud.import_manifest(manifest, branch="node-a", repo="people")
    uplink = 2 * manifest_size + chunk_bytes_up
    overhead_pct = (uplink / bytes_passed - 1) * 100 if bytes_passed else 0.0
    out = {
        "frames": frames,
        "items_passed": len(passed),
        "bytes_in": bytes_in,
        "bytes_passed": bytes_passed,
        "uplink_bytes": uplink,
        "manifest_bytes": manifest_size,
        "uplink_saved_pct": round((1 - uplink / bytes_in) * 100, 1),
        "job_s": round(job_s, 2),
        "ratio_uplink_to_passed": ratio(uplink, bytes_passed),
        "targets": [target(round(overhead_pct, 3), 2.0, "%", "uplink overhead over bytes passed")],
    }
    log(f"filter_uplink: {out}")
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--datums", type=int, default=DEFAULT_DATUMS)
    parser.add_argument("--process-datums", type=int, default=DEFAULT_PROCESS_DATUMS)
    parser.add_argument("--batched-datums", type=int, default=DEFAULT_BATCHED_DATUMS)
    parser.add_argument("--filter-frames", type=int, default=DEFAULT_FILTER_FRAMES)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeweave-bench-pipelines-"))
    try:
        report: dict[str, Any] = {
            "benchmark": "pipelines",
            "command": " ".join(["bench/pipelines.py", *sys.argv[1:]]),
            "machine": machine_info(),
            "source": source_info(),
            "skip": bench_skip(args.datums),
            "process_per_datum": await bench_process_per_datum(tmp, args.process_datums),
            "batched": await bench_batched(tmp, args.batched_datums),
            "end_to_end": await bench_end_to_end(tmp, args.datums),
            "chain": await bench_chain(tmp),
            "dag": await bench_dag(tmp),
            "chunking": await bench_chunking(tmp),
            "filter_uplink": await bench_filter_uplink(tmp, args.filter_frames),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    met = [
        t["met"]
        for part in report.values()
        if isinstance(part, dict)
        for t in part.get("targets", [])
    ]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
