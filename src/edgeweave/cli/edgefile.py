"""`edgeweave edge file put --data DIR REPO@BRANCH:/PATH -f FILE`: a file into this node's repo.

Run on the node itself, beside a running agent: the file goes to the agent's local put
endpoint (``edgeweave.edge.pipelines.putserver``), which stores it as a new commit on the
branch (creating the repo when missing) and wakes the pipelines placed on the node that read
it. Works with the cloud away. The agent's pipeline host starts with the first Pipeline (or repo
located on the node) the node holds; before that there is nothing to put into.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeweave.cli.context import UsageError
from edgeweave.cli.pfs import parse_ref


def add_parser(sub: Any, data_help: str) -> None:
    file = sub.add_parser("file", help="files in this node's repos (works offline)")
    fsub = file.add_subparsers(dest="edge_file_command", metavar="COMMAND", required=True)
    put = fsub.add_parser("put", help="put a local file into a repo on this node (one commit)")
    put.add_argument("target", metavar="REPO@BRANCH:/PATH")
    put.add_argument("-f", "--file", required=True, type=Path, metavar="FILE")
    put.add_argument("--data", type=Path, default=None, help=data_help)
    put.set_defaults(func=run_put)


def run_put(args: argparse.Namespace) -> int:
    from edgeweave.cli.edge import data_dir
    from edgeweave.edge.pipelines.putserver import put_local

    target = parse_ref(args.target)
    file: Path = args.file
    if not file.is_file():
        raise UsageError(f"{file} is not a file")
    path = target.path if target.path is not None else "/" + file.name
    import asyncio  # not at module level: building the parser must stay cheap

    commit = asyncio.run(put_local(data_dir(args.data), target.repo, target.ref, path, file))
    print(f"{file} put at {target.repo}@{target.ref}:{path} commit {commit}")
    return 0
