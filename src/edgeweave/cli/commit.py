"""``edgeweave commit list|inspect``: a repo's commits (pachctl's ``list commit``/``inspect
commit``).

``commit list images[@BRANCH]`` shows, newest first, each commit's id, branch, when it
finished, its origin (``user`` or ``auto`` — written by a pipeline) and its description;
``commit inspect images@master`` (a branch's head, or ``images@ID``) adds its parent, file
count, size, provenance (the input commits and pipeline version that made it) and the job.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeweave.cli.context import add_global_options, open_client

COMMIT_COLUMNS = ("REPO", "BRANCH", "COMMIT", "FINISHED", "ORIGIN", "DESCRIPTION")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("commit", help="commits of repos: list, inspect")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="commit_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="a repo's commits, newest first")
    add_global_options(listing, suppress=True)
    listing.add_argument("repo", metavar="REPO[@BRANCH]")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="newest N (50)")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(func=run_list)
    inspect = sub.add_parser("inspect", help="one commit: files, size, provenance, job")
    add_global_options(inspect, suppress=True)
    inspect.add_argument("commit", metavar="REPO@BRANCH|REPO@ID")
    inspect.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text")
    inspect.set_defaults(func=run_inspect)


def run_list(args: argparse.Namespace) -> int:
    import sys

    from edgeweave.cli import output as out
    from edgeweave.cli.pfs import format_ago, parse_ref

    ref = parse_ref(args.repo)
    branch = ref.ref if "@" in args.repo else None
    with open_client(args) as client:
        commits = client.list_commits(ref.repo, branch, args.limit)
    if args.output == "json":
        print(out.to_json({"items": commits}))
        return 0
    if not commits:
        print(f"No commits in {args.repo}.", file=sys.stderr)
        return 0
    rows = [list(COMMIT_COLUMNS)]
    for c in commits:
        finished = format_ago(c.get("finishedAt")) if c.get("finishedAt") else "open"
        rows.append(
            [c["repo"], c["branch"], c["id"], finished, c["origin"], out.cell(c.get("description"))]
        )
    print(out.render_table(rows))
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import parse_ref, print_detail

    ref = parse_ref(args.commit)
    with open_client(args) as client:
        commit = client.inspect_commit(ref.repo, ref.ref)
    print_detail(commit, args.output, describe_commit)
    return 0


def describe_commit(c: dict[str, Any]) -> str:
    from edgeweave.cli.output import cell
    from edgeweave.cli.pfs import format_bytes, format_time

    lines = [
        f"Commit:      {c['repo']}@{c['id']}",
        f"Branch:      {c['branch']}",
        f"Parent:      {cell(c.get('parent'))}",
        f"Origin:      {c['origin']}",
        f"Started:     {format_time(c.get('createdAt'))}",
        f"Finished:    {format_time(c.get('finishedAt')) if c.get('finishedAt') else 'open'}",
        f"Files:       {c.get('files', 0)}",
        f"Size:        {format_bytes(c.get('sizeBytes'))}",
        f"Job:         {cell(c.get('job'))}",
        f"Description: {cell(c.get('description'))}",
        "Provenance:",
    ]
    lines.extend(f"  {p}" for p in c.get("provenance") or ["<none>"])
    return "\n".join(lines)
