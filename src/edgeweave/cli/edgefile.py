"""`edgeweave edge file put --data DIR REPO@BRANCH:/PATH -f FILE`: files into this node's repo.

Run on the node itself, beside a running agent: the files go to the agent's local put
endpoint (``edgeweave.edge.pipelines.putserver``), which stores them as **one** new commit on
the branch (creating the repo when missing) and wakes the pipelines placed on the node that
read it. Works with the cloud away. The agent's pipeline host starts with the first Pipeline
(or repo located on the node) the node holds; before that there is nothing to put into.

Targets as `file put` takes them: a target that ends in ``/`` (or names no path) takes the
local file's name; several ``-f`` put several files under the target; ``-r -f DIR`` puts every
file under DIR below the target path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeweave.cli.file import add_put_arguments
from edgeweave.cli.pfs import parse_ref


def add_parser(sub: Any, data_help: str) -> None:
    file = sub.add_parser("file", help="files in this node's repos (works offline)")
    fsub = file.add_subparsers(dest="edge_file_command", metavar="COMMAND", required=True)
    put = fsub.add_parser("put", help="put local files into a repo on this node (one commit)")
    add_put_arguments(put)
    put.add_argument("--data", type=Path, default=None, help=data_help)
    put.set_defaults(func=run_put)


def run_put(args: argparse.Namespace) -> int:
    from edgeweave.cli.edge import data_dir
    from edgeweave.cli.file import plan_puts
    from edgeweave.edge.pipelines.putserver import put_local

    target = parse_ref(args.target)
    pairs = plan_puts(target, args.files, args.recursive)
    import asyncio  # not at module level: building the parser must stay cheap

    files = [(dest, local) for local, dest in pairs]
    commit = asyncio.run(put_local(data_dir(args.data), target.repo, target.ref, files))
    if len(pairs) == 1:
        local, dest = pairs[0]
        print(f"{local} put at {target.repo}@{target.ref}:{dest} commit {commit}")
    else:
        print(f"{len(pairs)} files put in {target.repo}@{target.ref} commit {commit}")
    return 0
