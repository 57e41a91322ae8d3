"""``edgeweave pipeline create|update|list|inspect|delete|wait``: Pachyderm specs, in the cloud.

- ``pipeline create -f spec.json`` reads Pachyderm pipeline specs (JSON if the file starts with
  ``{``, else YAML; several per file, COMPAT.md §3), checks them locally — errors name
  ``file:line`` and the field — and creates one ``Pipeline`` object each. A spec without
  ``placement`` runs in the cloud as soon as its inputs have commits. ``pipeline update -f``
  creates or replaces (a new transform re-runs every datum).
- ``pipeline list``: NAME, INPUT, PLACEMENT, STATE, LAST JOB (processed + skipped / total), AGE.
- ``pipeline wait [NAME ...] [--timeout 60s]``: until the pipelines and those upstream of them
  have processed every input commit (exit 1 at the timeout) — for scripts.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from edgeweave.cli.context import UsageError, add_global_options, namespace, open_client

if TYPE_CHECKING:
    from edgeweave.client.http import Client

PIPELINE_COLUMNS = ("NAME", "INPUT", "PLACEMENT", "STATE", "LAST JOB", "AGE")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("pipeline", help="data pipelines from Pachyderm specs")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="pipeline_command", metavar="COMMAND", required=True)
    for verb, helptext in (
        ("create", "create pipelines from a spec file (JSON or YAML, several per file)"),
        ("update", "create or replace pipelines from a spec file"),
    ):
        cmd = sub.add_parser(verb, help=helptext)
        add_global_options(cmd, suppress=True)
        cmd.add_argument(
            "-f", "--file", required=True, metavar="FILE", help="spec file, - for stdin"
        )
        cmd.set_defaults(func=run_create, replace=verb == "update")
    listing = sub.add_parser("list", help="pipelines with their state and last job")
    add_global_options(listing, suppress=True)
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(func=run_list)
    inspect = sub.add_parser("inspect", help="one pipeline's spec and status")
    add_global_options(inspect, suppress=True)
    inspect.add_argument("name", metavar="NAME")
    inspect.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    inspect.set_defaults(func=run_inspect)
    delete = sub.add_parser("delete", help="delete a pipeline (its output repo stays)")
    add_global_options(delete, suppress=True)
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=run_delete)
    wait = sub.add_parser("wait", help="wait until pipelines have processed their inputs")
    add_global_options(wait, suppress=True)
    wait.add_argument("names", nargs="*", metavar="NAME", help="default: every pipeline")
    wait.add_argument("--timeout", default="60s", metavar="DURATION", help="default 60s")
    wait.set_defaults(func=run_wait)


def read_specs(path: str) -> list[dict[str, Any]]:
    """The Pipeline objects of a spec file, checked as the cloud will check them (before
    anything is sent: a bad spec is reported with its ``file:line`` even without a cloud)."""
    from edgeweave.cli.manifests import read_text
    from edgeweave.pipelines.spec import parse_pipeline_specs

    text, source = read_text(path)
    docs = parse_pipeline_specs(text, source)
    if not docs:
        raise UsageError(f"{source} holds no pipeline spec")
    return [d.pipeline.model_dump(mode="json", exclude_unset=True, by_alias=True) for d in docs]


def run_create(args: argparse.Namespace) -> int:
    objs = read_specs(args.file)
    with open_client(args) as client:
        ns = namespace(args, client)
        for obj in objs:
            obj["metadata"]["namespace"] = obj["metadata"].get("namespace") or ns
            verb = put_pipeline(client, obj, replace=args.replace)
            print(f"pipeline/{obj['metadata']['name']} {verb}", flush=True)
    return 0


def put_pipeline(client: Client, obj: dict[str, Any], *, replace: bool) -> str:
    from edgeweave.errors import AlreadyExists, NotFound

    name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
    try:
        client.create(obj)
        return "created"
    except AlreadyExists:
        if not replace:
            raise AlreadyExists(
                f"pipeline {name!r} already exists; `edgeweave pipeline update -f` replaces it"
            ) from None
    try:
        current = client.get("pipelines", name, ns)
    except NotFound:  # deleted in between
        client.create(obj)
        return "created"
    meta = {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
    client.update({**obj, "metadata": meta})
    return "updated"


def describe_input(spec_input: Any) -> str:
    """``docs:/*``, ``(docs:/* x code:/)``, ``(a:/(*) join b:/(*))`` — a compact INPUT cell."""
    if not isinstance(spec_input, dict):
        return "<none>"
    pfs = spec_input.get("pfs")
    if isinstance(pfs, dict):
        branch = pfs.get("branch")
        repo = f"{pfs.get('repo')}@{branch}" if branch and branch != "master" else pfs.get("repo")
        return f"{repo}:{pfs.get('glob')}"
    for kind, joiner in (
        ("cross", " x "),
        ("union", " + "),
        ("join", " join "),
        ("group", " group "),
    ):
        members = spec_input.get(kind)
        if isinstance(members, list):
            return "(" + joiner.join(describe_input(m) for m in members) + ")"
    cron = spec_input.get("cron")
    return f"cron:{cron.get('spec')}" if isinstance(cron, dict) else "<none>"


def last_job_cell(status: dict[str, Any]) -> str:
    job = status.get("lastJob")
    if not isinstance(job, dict):
        return "<none>"
    counts = f"{job.get('processed', 0)} + {job.get('skipped', 0)} / {job.get('total', 0)}"
    return f"{counts} {job.get('state', '')}"


def pipeline_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    from edgeweave.cli.output import cell, object_age

    rows = [list(PIPELINE_COLUMNS)]
    for obj in items:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        rows.append(
            [
                obj["metadata"]["name"],
                describe_input(spec.get("input")),
                cell(spec.get("placement") or "cloud"),
                cell(status.get("state") or "starting"),
                last_job_cell(status),
                object_age(obj),
            ]
        )
    return rows


def run_list(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out

    with open_client(args) as client:
        items, _ = client.list_all("pipelines", namespace(args, client))
    out.print_listing(args.output, items, pipeline_rows, "pipelines")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import print_detail

    with open_client(args) as client:
        obj = client.get("pipelines", args.name, namespace(args, client))
    print_detail(obj, args.output)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.delete("pipelines", args.name, namespace(args, client))
    print(f"pipeline/{args.name} deleted (its output repo {args.name} stays)")
    return 0


def run_wait(args: argparse.Namespace) -> int:
    from edgeweave.cli.token import parse_duration_s

    try:
        timeout_s = parse_duration_s(args.timeout)
    except UsageError:
        raise UsageError(
            f"--timeout {args.timeout!r} is not a duration: use e.g. 90s, 5m"
        ) from None
    with open_client(args) as client:
        settled = client.wait_pipelines(args.names, namespace(args, client), timeout_s)
    if not settled:
        what = ", ".join(args.names) or "every pipeline"
        print(f"error: {what} still busy after {args.timeout}", file=sys.stderr)
        return 1
    return 0
