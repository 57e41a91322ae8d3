"""``edgeweave version``: the client's version, and the cloud's when it can be reached.

Always exits 0 with the client version: an unreachable or unconfigured cloud is reported on
stderr as a note, because "which version do I have" must work before anything is set up.
"""

from __future__ import annotations

import argparse
import sys

from edgeweave.cli.context import add_global_options


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("version", help="print the client and server versions")
    add_global_options(p, suppress=True)
    p.add_argument("--client", action="store_true", help="only the client version")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import edgeweave

    print(f"Client Version: {edgeweave.__version__}", flush=True)
    if args.client:
        return 0
    from edgeweave.cli.context import open_client
    from edgeweave.errors import EdgeweaveError

    try:
        with open_client(args) as client:
            info = client.version()
    except EdgeweaveError as e:
        print(f"Server Version: unknown ({e.message})", file=sys.stderr)
        return 0
    print(f"Server Version: {info.get('version', info.get('gitVersion', '<unknown>'))}")
    return 0
