"""``edgeweave lineage REPO@REF:/PATH``: where a file came from, back to the files users put.

Prints the file, then — indented — the input files of the datum that wrote it, each with its
own inputs when it was written by another pipeline, across nodes too (a Merger's merged file,
the node's job that wrote it, and the node's input file, which stays on the node)::

    wordcount@3f2a…:/a.txt  (pipeline wordcount, job 81ab…, datum 9c04…)
      docs@77e1…:/a.txt  (put by a user)

    people-frames@5d10…:/edge-1/lobby-0820.png  (merged from branch edge-1)
      people-frames@a9c3…:/lobby-0820.png  (pipeline people, job 0e4f… on node edge-1, datum …)
        frames@61b2…:/lobby-0820.png  (on node edge-1)

``-o json`` gives the whole tree as the API returns it.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeweave.cli.context import add_global_options, open_client

SHORT = 12


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("lineage", help="the input files an output file was made from")
    add_global_options(p, suppress=True)
    p.add_argument("file", metavar="REPO@REF:/PATH")
    p.add_argument("-o", "--output", choices=("tree", "json"), default="tree")
    p.set_defaults(func=run)


def tree_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    where = f"{node['repo']}@{node['commit'][:SHORT]}:{node['path']}"
    notes = []
    if node.get("pipeline"):
        note = f"pipeline {node['pipeline']}, job {str(node.get('job'))[:SHORT]}"
        if node.get("jobNode"):
            note += f" on node {node['jobNode']}"
        if node.get("datum"):
            note += f", datum {str(node['datum'])[:SHORT]}"
            if node.get("datumJob") and node["datumJob"] != node.get("job"):
                note += f" (skipped: run by job {str(node['datumJob'])[:SHORT]})"
        notes.append(note)
    elif node.get("mergedFrom"):
        notes.append(f"merged from branch {node['mergedFrom']}")
    if node.get("node"):
        notes.append(f"on node {node['node']}")
    lines = [f"{'  ' * depth}{where}  ({'; '.join(notes) or 'put by a user'})"]
    for child in node.get("inputs") or []:
        lines.extend(tree_lines(child, depth + 1))
    if node.get("truncated"):
        lines.append(f"{'  ' * (depth + 1)}... (more inputs left out)")
    return lines


def run(args: argparse.Namespace) -> int:
    from edgeweave.cli import output as out
    from edgeweave.cli.pfs import parse_ref

    ref = parse_ref(args.file, need_path=True)
    assert ref.path is not None
    with open_client(args) as client:
        root = client.lineage(ref.repo, ref.ref, ref.path)
    print(out.to_json(root) if args.output == "json" else "\n".join(tree_lines(root)))
    return 0
