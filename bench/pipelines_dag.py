"""The ``dag`` section of ``bench/pipelines.py``: task-to-task latency of task DAGs.

Run ``.venv/bin/python bench/pipelines_dag.py [--rounds N]`` for this section alone (one
JSON document on stdout, progress on stderr), or ``bench/pipelines.py`` for all sections.

The cloud's path without HTTP: a SQLite state store, the ``Workflow`` object, and
``Workflows.start_run`` — the run's status written to the store as it changes, each step a
try recorded in the job store, one process per step, its output committed. Two workflows:

- ``chain``: 10 steps in a line, each ``sh -c 'date +%s%N > /pfs/out/start; date +%s%N >
  /pfs/out/end'`` (so the step's own process says when it started and ended);
- ``diamond``: one step, four side by side after it, one after those four.

Per hop (the upstream step that ended last → the step it unblocked), over N runs (default
5): the *engine* hop — that step's ``finishedAt`` (its output commit finished) to the step's
``startedAt`` (its try begins), from the run's status — and the *process* hop — the upstream
process's last timestamp to the step's process's first, which adds collecting and committing the
outputs, recording the jobs, building the step's ``/pfs`` and spawning ``sh`` and ``date``.
Baseline in the same run: the same command spawned 10 times one after another with asyncio,
nothing in between (its hop is the least a process-per-step engine can cost). Target, on the
chain: process hop ≤ 50 ms at p50 and at the max (Airflow takes seconds between tasks). The
diamond is reported without a target: its four middle steps start in the same instant and
their processes are spawned and recorded one after another on the one event loop, so the
last of them starts later than the first (on a 2-core machine, tens of ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import log, machine_info, percentile, ratio, source_info, target
from edgeweave.aio.tasks import open_supervisor
from edgeweave.cloud.pipelines.workflows import Workflows
from edgeweave.cloud.store.sqlite import open_sqlite_store
from edgeweave.models.registry import validate
from edgeweave.pipelines.dagspec import parse_workflow_file
from edgeweave.pipelines.dagstep import StepRunner
from edgeweave.pipelines.hosting import open_host_stores
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.runner import DatumRunner

DAG_STEPS = 10
DAG_ROUNDS = 5
DAG_TARGET_MS = 50.0
STAMP = ["sh", "-c", "date +%s%N > /pfs/out/start; date +%s%N > /pfs/out/end"]


def chain(steps: int) -> str:
    lines = ["workflow: {name: chain}", "steps:"]
    for i in range(steps):
        deps = f", depends_on: [s{i - 1:02d}]" if i else ""
        lines.append(f"  - {{name: s{i:02d}, cmd: {json.dumps(STAMP)}{deps}}}")
    return "\n".join(lines) + "\n"


def diamond() -> str:
    lines = ["workflow: {name: diamond}", "steps:", f"  - {{name: top, cmd: {json.dumps(STAMP)}}}"]
    for i in range(4):
        lines.append(f"  - {{name: mid{i}, cmd: {json.dumps(STAMP)}, depends_on: [top]}}")
    mids = ", ".join(f"mid{i}" for i in range(4))
    lines.append(f"  - {{name: bottom, cmd: {json.dumps(STAMP)}, depends_on: [{mids}]}}")
    return "\n".join(lines) + "\n"


async def stamps(repos: Repos, commit: str) -> tuple[float, float]:
    start = int((await repos.get_file(commit, "/start")).decode()) / 1e9
    end = int((await repos.get_file(commit, "/end")).decode()) / 1e9
    return start, end


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values_ms, 50), 2),
        "max": round(max(values_ms), 2),
        "mean": round(sum(values_ms) / len(values_ms), 2),
    }


async def run_rounds(workflows: Workflows, repos: Repos, text: str, rounds: int) -> dict[str, Any]:
    (wf,) = parse_workflow_file(text)
    name = wf.metadata.name
    await workflows.store.create(validate(wf.model_dump(mode="json", exclude_unset=True)))
    engine: list[float] = []
    process: list[float] = []
    totals: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        run = await workflows.start_run("default", name, {})
        done = await workflows.wait_run("default", run["metadata"]["name"])
        totals.append((time.perf_counter() - started) * 1000)
        steps = done["status"]["steps"]
        assert done["status"]["state"] == "success", done["status"]
        marks = {n: await stamps(repos, s["outputCommit"]) for n, s in steps.items()}
        for step in wf.spec.steps:
            if not step.depends_on:
                continue
            # the hop that matters is from the upstream step that ended last: it unblocked this one
            ended = max(steps[d]["finishedAt"] for d in step.depends_on)
            engine.append((steps[step.name]["startedAt"] - ended) * 1000)
            process.append((marks[step.name][0] - max(marks[d][1] for d in step.depends_on)) * 1000)
    return {
        "steps": len(wf.spec.steps),
        "rounds": rounds,
        "hops": len(engine),
        "engine_hop_ms": summary(engine),
        "process_hop_ms": summary(process),
        "run_total_ms": summary(totals),
    }


async def baseline_hop_ms(tmp: Path, steps: int) -> float:
    """Process hop of STAMP spawned ``steps`` times back to back, nothing else in between."""
    out = tmp / "pfs" / "out"
    out.mkdir(parents=True)
    argv = [a.replace("/pfs", str(tmp / "pfs")) for a in STAMP]
    hops = []
    last_end = None
    for _ in range(steps):
        proc = await asyncio.create_subprocess_exec(*argv)
        await proc.wait()
        start = int((out / "start").read_text()) / 1e9
        if last_end is not None:
            hops.append((start - last_end) * 1000)
        last_end = int((out / "end").read_text()) / 1e9
    return percentile(hops, 50)


async def bench_dag(tmp: Path, rounds: int = DAG_ROUNDS) -> dict[str, Any]:
    root = tmp / "dag"
    async with open_host_stores(root) as (repos, jobs), open_supervisor("bench") as sup:
        store = await open_sqlite_store(root / "store.db")
        try:
            steps = StepRunner(repos, jobs, DatumRunner(root / "work", repos))
            workflows = Workflows(store, steps, sup)
            linear = await run_rounds(workflows, repos, chain(DAG_STEPS), rounds)
            fan = await run_rounds(workflows, repos, diamond(), rounds)
        finally:
            await store.aclose()
    base = await baseline_hop_ms(root, DAG_STEPS)
    hop = linear["process_hop_ms"]
    out = {
        "chain": linear,
        "diamond": fan,
        "baseline_process_hop_p50_ms": round(base, 2),
        "process_hop_p50_over_baseline": ratio(hop["p50"], base),
        "targets": [
            target(hop["p50"], DAG_TARGET_MS, "ms", "task to task, process hop p50 (chain)"),
            target(hop["max"], DAG_TARGET_MS, "ms", "task to task, process hop max (chain)"),
        ],
    }
    log(f"dag: {out}")
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(description="task-to-task latency of task DAGs")
    parser.add_argument("--rounds", type=int, default=DAG_ROUNDS)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="edgeweave-bench-dag-"))
    try:
        report = {
            "benchmark": "pipelines.dag",
            "command": " ".join(["bench/pipelines_dag.py", *sys.argv[1:]]),
            "machine": machine_info(),
            "source": source_info(),
            "dag": await bench_dag(tmp, args.rounds),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if all(t["met"] for t in report["dag"]["targets"]) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
