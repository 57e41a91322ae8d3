"""`edgeweave logs APP --node N [-f] [--tail N]`: an app's log on one node, through the cloud.

The cloud relays the request to the node's agent over its link; the node must be connected.
On the node itself the log is also a plain file: DATA/apps/NS/APP/logs/app.log.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgeweave.cli.context import add_global_options, namespace, open_client


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("logs", help="print an app's log from one node")
    add_global_options(p, suppress=True)
    p.add_argument("app", metavar="APP", help="the App's name")
    p.add_argument("--node", required=True, help="the node whose instance to read")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument(
        "--tail", type=int, default=None, metavar="N", help="only the last N lines (default 100)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for line in client.app_log(
            args.app, args.node, namespace(args, client), follow=args.follow, tail_lines=args.tail
        ):
            sys.stdout.write(line + "\n")
            if args.follow:
                sys.stdout.flush()
    return 0
