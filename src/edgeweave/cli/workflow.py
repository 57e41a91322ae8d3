"""``edgeweave workflow create|update|list|run|inspect|delete``: task DAGs in the cloud.

- ``workflow create -f FILE``: workflow files (docs/pipelines.md "Task DAGs"), checked
  locally first — errors name the file and the field — then one ``Workflow`` object each;
  ``update -f`` creates or replaces.
- ``workflow list``: NAME, STEPS, SCHEDULE, LAST RUN, STATE, AGE.
- ``workflow run NAME [-p KEY=VALUE]... [--wait [--timeout 10m]]``: starts a run and prints
  its name; with ``--wait`` prints every step's state when it ended (exit 1 unless it
  succeeded, or at the timeout).
- ``workflow inspect NAME``: the steps and the recent runs; ``--run RUN``: one run's steps
  with state, tries, start, duration, last job and error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from edgeweave.cli.context import UsageError, add_global_options, namespace, open_client

if TYPE_CHECKING:
    from edgeweave.client.http import Client

WORKFLOW_LABEL = "edgeweave.io/workflow"  # as models.workflows writes it
RECENT_RUNS = 10


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("workflow", help="task DAGs: steps with dependencies, retries")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="workflow_command", metavar="COMMAND", required=True)
    for verb, helptext in (
        ("create", "create workflows from a workflow file (YAML or JSON)"),
        ("update", "create or replace workflows from a workflow file"),
    ):
        cmd = sub.add_parser(verb, help=helptext)
        add_global_options(cmd, suppress=True)
        cmd.add_argument("-f", "--file", required=True, metavar="FILE", help="- for stdin")
        cmd.set_defaults(func=run_create, replace=verb == "update")
    listing = sub.add_parser("list", help="workflows with their schedule and last run")
    add_global_options(listing, suppress=True)
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(func=run_list)
    run = sub.add_parser("run", help="start a run of a workflow")
    add_global_options(run, suppress=True)
    run.add_argument("name", metavar="NAME")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter"
    )
    run.add_argument("--wait", action="store_true", help="wait for the run to end")
    run.add_argument("--timeout", default="10m", metavar="DURATION", help="with --wait (10m)")
    run.set_defaults(func=run_run)
    inspect = sub.add_parser("inspect", help="a workflow's steps and runs, or one run")
    add_global_options(inspect, suppress=True)
    inspect.add_argument("name", metavar="NAME")
    inspect.add_argument("--run", metavar="RUN", help="one run (its name) step by step")
    inspect.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    inspect.set_defaults(func=run_inspect)
    delete = sub.add_parser("delete", help="delete a workflow (its runs and outputs stay)")
    add_global_options(delete, suppress=True)
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=run_delete)


def read_workflows(path: str) -> list[dict[str, Any]]:
    from edgeweave.cli.manifests import read_text
    from edgeweave.pipelines.dagspec import parse_workflow_file

    text, source = read_text(path)
    found = parse_workflow_file(text, source)
    if not found:
        raise UsageError(f"{source} holds no workflow")
    return [wf.model_dump(mode="json", exclude_unset=True, by_alias=True) for wf in found]


def run_create(args: argparse.Namespace) -> int:
    from edgeweave.errors import AlreadyExists

    objs = read_workflows(args.file)
    with open_client(args) as client:
        ns = namespace(args, client)
        for obj in objs:
            obj["metadata"]["namespace"] = obj["metadata"].get("namespace") or ns
            name = obj["metadata"]["name"]
            try:
                client.create(obj)
                verb = "created"
            except AlreadyExists:
                if not args.replace:
                    raise AlreadyExists(
                        f"workflow {name!r} already exists; `edgeweave workflow update -f` "
                        "replaces it"
                    ) from None
                current = client.get("workflows", name, obj["metadata"]["namespace"])
                meta = {
                    **obj["metadata"],
                    "resourceVersion": current["metadata"]["resourceVersion"],
                }
                client.update({**obj, "metadata": meta})
                verb = "updated"
            print(f"workflow/{name} {verb}", flush=True)
    return 0


def workflow_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    from edgeweave.cli.output import object_age

    rows = [["NAME", "STEPS", "SCHEDULE", "LAST RUN", "STATE", "AGE"]]
    for obj in items:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        rows.append(
            [
                obj["metadata"]["name"],
                str(len(spec.get("steps") or [])),
                spec.get("schedule") or "-",
                status.get("lastRun") or "-",
                status.get("lastRunState") or "-",
                object_age(obj),
            ]
        )
    return rows


def run_list(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out

    with open_client(args) as client:
        items, _ = client.list_all("workflows", namespace(args, client))
    out.print_listing(args.output, items, workflow_rows, "workflows")
    return 0


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-p {pair!r}: write KEY=VALUE")
        params[key] = value
    return params


def run_run(args: argparse.Namespace) -> int:
    from edgeweave.cli.token import parse_duration_s

    params = parse_params(args.param)
    timeout_s = parse_duration_s(args.timeout)
    with open_client(args) as client:
        ns = namespace(args, client)
        run = client.start_workflow_run(args.name, params, ns)
        name = run["metadata"]["name"]
        print(f"workflowrun/{name} started", flush=True)
        if not args.wait:
            return 0
        done, run = client.wait_workflow_run(name, ns, timeout_s)
    print(describe_run(run))
    if not done:
        print(f"error: run {name} still running after {args.timeout}", file=sys.stderr)
        return 1
    return 0 if (run.get("status") or {}).get("state") == "success" else 1


def step_rows(run: dict[str, Any]) -> list[list[str]]:
    from edgeweave.cli.pfs import format_duration, format_time

    rows = [["STEP", "STATE", "TRIES", "STARTED", "DURATION", "JOB", "ERROR"]]
    for name, st in ((run.get("status") or {}).get("steps") or {}).items():
        started, finished = st.get("startedAt"), st.get("finishedAt")
        took = finished - started if started is not None and finished is not None else None
        jobs = st.get("jobs") or []
        rows.append(
            [
                name,
                st.get("state", "-"),
                str(st.get("tries", 0)),
                format_time(started),
                format_duration(took),
                jobs[-1][:12] if jobs else "-",
                (st.get("error") or "")[:60],
            ]
        )
    return rows


def describe_run(run: dict[str, Any]) -> str:
    from edgeweave.cli import output as out
    from edgeweave.cli.pfs import format_duration

    spec, status = run.get("spec") or {}, run.get("status") or {}
    started, finished = status.get("startedAt"), status.get("finishedAt")
    took = finished - started if started is not None and finished is not None else None
    params = ", ".join(f"{k}={v}" for k, v in (spec.get("params") or {}).items()) or "-"
    lines = [
        f"Run:       {run['metadata']['name']} ({spec.get('trigger', 'manual')})",
        f"Workflow:  {spec.get('workflow')}",
        f"Params:    {params}",
        f"State:     {status.get('state', '-')}  ({format_duration(took)})",
    ]
    if status.get("message"):
        lines.append(f"Message:   {status['message']}")
    return "\n".join(lines) + "\n" + out.render_table(step_rows(run))


def _runs(client: Client, name: str, ns: str) -> list[dict[str, Any]]:
    items, _ = client.list_all("workflowruns", ns, f"{WORKFLOW_LABEL}={name}")
    return sorted(items, key=lambda r: (r.get("status") or {}).get("startedAt") or 0, reverse=True)


def run_inspect(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out
    from edgeweave.cli.pfs import print_detail

    with open_client(args) as client:
        ns = namespace(args, client)
        if args.run:
            run = client.get("workflowruns", args.run, ns)
            if (run.get("spec") or {}).get("workflow") != args.name:
                raise UsageError(f"run {args.run} is not a run of workflow {args.name}")
            print_detail(run, args.output, describe_run)
            return 0
        obj = client.get("workflows", args.name, ns)
        runs = _runs(client, args.name, ns)[:RECENT_RUNS]
    if args.output != "text":
        print_detail({"workflow": obj, "runs": runs}, args.output)
        return 0
    spec = obj.get("spec") or {}
    print(f"Workflow:  {args.name}")
    print(f"Schedule:  {spec.get('schedule') or '-'}")
    params = spec.get("params") or {}
    shown = [f"{k}={v}" if v is not None else f"{k} (required)" for k, v in params.items()]
    print(f"Params:    {', '.join(shown) or '-'}")
    rows = [["STEP", "DEPENDS ON", "RETRIES", "CMD"]]
    for step in spec.get("steps") or []:
        rows.append(
            [
                step["name"],
                ",".join(step.get("depends_on") or []) or "-",
                str(step.get("retries", 0)),
                " ".join(step.get("cmd") or [])[:60],
            ]
        )
    print(out.render_table(rows))
    if runs:
        run_rows = [["RUN", "TRIGGER", "STATE", "STARTED"]]
        from edgeweave.cli.pfs import format_time

        for r in runs:
            status = r.get("status") or {}
            run_rows.append(
                [
                    r["metadata"]["name"],
                    (r.get("spec") or {}).get("trigger", "-"),
                    status.get("state", "-"),
                    format_time(status.get("startedAt")),
                ]
            )
        print("\n" + out.render_table(run_rows))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.delete("workflows", args.name, namespace(args, client))
    print(f"workflow/{args.name} deleted (its runs and the repo {args.name} stay)")
    return 0
