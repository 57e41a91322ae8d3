"""``edgeweave repo create|list|inspect|delete``: the cloud's data repos (pachctl's verbs).

``repo create NAME --node NODE`` places the repo on a node (docs/pipelines.md). ``repo list``
shows each repo's location, size (of its master branch's head), branches and description.
``repo delete`` refuses a repo a pipeline reads or writes; deleting frees the space at once.
Only argparse and light helpers at module level (see :mod:`edgeweave.cli.main`).
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeweave.cli.context import add_global_options, open_client

REPO_COLUMNS = ("NAME", "LOCATION", "CREATED", "SIZE (MASTER)", "BRANCHES", "DESCRIPTION")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("repo", help="data repos: create, list, inspect, delete")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="repo_command", metavar="COMMAND", required=True)
    create = sub.add_parser("create", help="create an empty repo")
    add_global_options(create, suppress=True)
    create.add_argument("name", metavar="NAME")
    create.add_argument("-d", "--description", default="", help="what the repo holds")
    create.add_argument(
        "--node",
        default=None,
        metavar="NODE",
        help="the repo lives on this node (its agent creates it; the cloud records its commits)",
    )
    create.set_defaults(func=run_create)
    listing = sub.add_parser("list", help="list repos")
    add_global_options(listing, suppress=True)
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.set_defaults(func=run_list)
    inspect = sub.add_parser("inspect", help="show one repo and its branch heads")
    add_global_options(inspect, suppress=True)
    inspect.add_argument("name", metavar="NAME")
    inspect.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    inspect.set_defaults(func=run_inspect)
    delete = sub.add_parser("delete", help="delete a repo no pipeline uses, with its data")
    add_global_options(delete, suppress=True)
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=run_delete)


def run_create(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.create_repo(args.name, args.description, args.node)
    where = f" on node {args.node}" if args.node else ""
    print(f"repo/{args.name} created{where}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out

    with open_client(args) as client:
        repos = client.list_repos()
    out.print_listing(args.output, repos, repo_rows, "repos")
    return 0


def repo_rows(repos: list[dict[str, Any]]) -> list[list[str]]:
    from edgeweave.cli import output as out
    from edgeweave.cli.pfs import format_ago, format_bytes

    rows = [list(REPO_COLUMNS)]
    for r in repos:
        rows.append(
            [
                out.cell(r.get("name")),
                _location(r.get("location")),
                format_ago(r.get("createdAt")),
                format_bytes(r.get("sizeBytes")),
                out.cell(sorted(r.get("branches") or {})),
                out.cell(r.get("description")),
            ]
        )
    return rows


def run_inspect(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import print_detail

    with open_client(args) as client:
        repo = client.get_repo(args.name)
    print_detail(repo, args.output)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.delete_repo(args.name)
    print(f"repo/{args.name} deleted")
    return 0


def _location(value: object) -> str:
    node = value.get("node") if isinstance(value, dict) else None
    return f"node {node}" if isinstance(node, str) else "cloud"
