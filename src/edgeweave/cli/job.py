"""``edgeweave job list|inspect`` and ``edgeweave datum list JOB``: what pipelines did.

A workflow step's try is a job too: its pipeline is ``<workflow>.<step>``, listed with its
try (``etl.load try 2/3``); ``job inspect`` names the workflow, the run and the step.

``job list [-p PIPELINE]`` shows, newest first, each job's id, pipeline, start, duration,
PROGRESS as ``processed + skipped / total`` (failed and recovered datums added when there are
any), bytes read (DL) and written (UL) by the datums that ran, and the state. ``job inspect``
adds the input and output commits and the error. ``datum list JOB`` lists the datums that ran
in the job, then those it skipped (unchanged since an earlier job). A job id may be shortened
to any unambiguous prefix.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgeweave.cli.context import add_global_options, open_client

JOB_COLUMNS = ("ID", "PIPELINE", "NODE", "STARTED", "DURATION", "PROGRESS", "DL", "UL", "STATE")
DATUM_COLUMNS = ("ID", "STATE", "FILES", "TIME", "DL", "UL", "ATTEMPTS")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("job", help="pipeline jobs: list, inspect")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="job_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="jobs, newest first")
    add_global_options(listing, suppress=True)
    listing.add_argument("-p", "--pipeline", metavar="NAME", help="only this pipeline's jobs")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="newest N (50)")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(func=run_list)
    inspect = sub.add_parser("inspect", help="one job: inputs, output, datums, error")
    add_global_options(inspect, suppress=True)
    inspect.add_argument("job", metavar="JOB")
    inspect.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    inspect.set_defaults(func=run_inspect)

    d = subparsers.add_parser("datum", help="the datums of a job")
    add_global_options(d, suppress=True)
    dsub = d.add_subparsers(dest="datum_command", metavar="COMMAND", required=True)
    dlist = dsub.add_parser("list", help="datums that ran in a job, then those it skipped")
    add_global_options(dlist, suppress=True)
    dlist.add_argument("job", metavar="JOB")
    dlist.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N (1000)")
    dlist.add_argument("-o", "--output", choices=("table", "json"), default="table")
    dlist.set_defaults(func=run_datums)


def progress_cell(job: dict[str, Any]) -> str:
    d = job.get("datums") or {}
    text = f"{d.get('processed', 0)} + {d.get('skipped', 0)} / {d.get('total', 0)}"
    extra = [f"{d[k]} {k}" for k in ("failed", "recovered") if d.get(k)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _duration(job: dict[str, Any]) -> str:
    from edgeweave.cli.pfs import format_duration

    started, finished = job.get("startedAt"), job.get("finishedAt")
    if not isinstance(started, int | float) or not isinstance(finished, int | float):
        return "-"
    return format_duration(finished - started)


def pipeline_cell(job: dict[str, Any]) -> str:
    """The pipeline, or for a workflow step's try ``workflow.step try 2/3``."""
    task = job.get("task")
    if isinstance(task, dict):
        return f"{job['pipeline']} try {task.get('try')}/{task.get('tries')}"
    return str(job["pipeline"])


def job_rows(jobs: list[dict[str, Any]], now: float | None = None) -> list[list[str]]:
    from edgeweave.cli.pfs import format_ago, format_bytes

    rows = [list(JOB_COLUMNS)]
    for j in jobs:
        rows.append(
            [
                j["id"],
                pipeline_cell(j),
                j.get("node") or "cloud",
                format_ago(j.get("startedAt"), now),
                _duration(j),
                progress_cell(j),
                format_bytes(j.get("bytesIn")),
                format_bytes(j.get("bytesOut")),
                j["state"],
            ]
        )
    return rows


def run_list(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out

    with open_client(args) as client:
        jobs = client.list_jobs(args.pipeline, args.limit)
    out.print_listing(args.output, jobs, job_rows, "jobs")
    return 0


def describe_job(j: dict[str, Any]) -> str:
    from edgeweave.cli.output import cell
    from edgeweave.cli.pfs import format_bytes, format_time

    lines = [
        f"Job:         {j['id']}",
        f"Pipeline:    {j['pipeline']} (version {j['version'][:19]})",
        f"State:       {j['state']}",
        f"Ran on:      {j.get('node') or 'cloud'}",
        f"Started:     {format_time(j.get('startedAt'))}",
        f"Duration:    {_duration(j)}",
        f"Datums:      {progress_cell(j)}" + ("  (incremental)" if j.get("incremental") else ""),
        f"Data:        {format_bytes(j.get('bytesIn'))} in, {format_bytes(j.get('bytesOut'))} out",
        f"Output:      {j['pipeline']}@{cell(j.get('outputCommit'))}",
    ]
    task = j.get("task")
    if isinstance(task, dict):
        lines[1] = f"Workflow:    {task.get('workflow')} (namespace {task.get('namespace')})"
        lines.insert(2, f"Run:         {task.get('run')}")
        lines.insert(
            3, f"Step:        {task.get('step')}, try {task.get('try')}/{task.get('tries')}"
        )
        lines[-1] = f"Output:      {task.get('workflow')}@{cell(j.get('outputCommit'))}"
    counts = j.get("filter")
    if isinstance(counts, dict):
        lines.append(
            f"Filter:      {counts.get('itemsIn')} in ({format_bytes(counts.get('bytesIn'))}), "
            f"{counts.get('itemsPassed')} passed ({format_bytes(counts.get('bytesPassed'))}), "
            f"{counts.get('itemsDropped')} dropped ({format_bytes(counts.get('bytesDropped'))})"
        )
    lines.append("Inputs:")
    lines.extend(
        f"  {i['repo']}@{i['branch']} = {i['commit'] or '<no commit>'}"
        for i in j.get("inputs") or []
    )
    if j.get("error"):
        lines.append(f"Error:       {j['error']}")
    return "\n".join(lines)


def run_inspect(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import print_detail

    with open_client(args) as client:
        job = client.inspect_job(args.job)
    print_detail(job, args.output, describe_job)
    return 0


def datum_rows(datums: list[dict[str, Any]]) -> list[list[str]]:
    from edgeweave.cli.pfs import format_bytes, format_duration

    rows = [list(DATUM_COLUMNS)]
    for d in datums:
        ran = d["state"] != "skipped"
        rows.append(
            [
                d["id"][:12],
                d["state"],
                d["name"],
                format_duration(d.get("durationSeconds")) if ran else "-",
                format_bytes(d.get("bytesIn")) if ran else "-",
                format_bytes(d.get("bytesOut")) if ran else "-",
                str(d.get("attempts", 0)) if ran else "-",
            ]
        )
    return rows


def run_datums(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out

    with open_client(args) as client:
        datums = client.list_datums(args.job, args.limit)
    if args.output == "json":
        print(out.to_json({"items": datums}))
        return 0
    if not datums:
        print(f"Job {args.job} has no datums.", file=sys.stderr)
        return 0
    print(out.render_table(datum_rows(datums)))
    failed = [d for d in datums if d["state"] in ("failed", "recovered") and d.get("error")]
    for d in failed:
        print(f"\n{d['id'][:12]} {d['state']}: {d['error']}")
        if d.get("logTail"):
            print("  " + d["logTail"].rstrip("\n").replace("\n", "\n  "))
    return 0
