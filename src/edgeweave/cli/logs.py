"""`edgeweave logs APP --node N [-f] [--tail N]`: an app's log on one node, through the cloud;
`edgeweave logs --job JOB [--datum ID]`: the logs of a pipeline job's datums.

For an app, the cloud relays the request to the node's agent over its link; the node must be
connected. On the node itself the log is also a plain file: DATA/apps/NS/APP/logs/app.log.
For a job, the cloud prints each datum that ran (``=== datum ID NAME (STATE)``) followed by
what its code wrote to stdout and stderr and the runner's ``[edgeweave]`` notes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgeweave.cli.context import UsageError, add_global_options, namespace, open_client


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("logs", help="print an app's log from one node, or a job's logs")
    add_global_options(p, suppress=True)
    p.add_argument("app", metavar="APP", nargs="?", help="the App's name")
    p.add_argument("--node", help="the node whose instance to read")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument(
        "--tail", type=int, default=None, metavar="N", help="only the last N lines (default 100)"
    )
    p.add_argument("--job", metavar="JOB", help="a pipeline job's logs instead of an app's")
    p.add_argument("--datum", metavar="ID", help="with --job: one datum (an id prefix)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.job:
        if args.app or args.node or args.follow:
            raise UsageError("--job takes no APP, --node or --follow")
        with open_client(args) as client:
            for line in client.job_logs(args.job, args.datum):
                sys.stdout.write(line + "\n")
        return 0
    if not args.app or not args.node:
        raise UsageError("give APP and --node NODE (or --job JOB for a pipeline job)")
    with open_client(args) as client:
        for line in client.app_log(
            args.app, args.node, namespace(args, client), follow=args.follow, tail_lines=args.tail
        ):
            sys.stdout.write(line + "\n")
            if args.follow:
                sys.stdout.flush()
    return 0
