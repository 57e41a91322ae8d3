"""``edgeweave token create``: a short-lived join token for ``edgeweave edge join``.

Prints the token alone on stdout, so ``T=$(edgeweave token create)`` works; the expiry goes to
stderr. Imports the client only inside ``run`` (see :mod:`edgeweave.cli.main`).
"""

from __future__ import annotations

import argparse
import re
import sys

from edgeweave.cli.context import UsageError, add_global_options

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> int:
    """Seconds in ``3600``, ``90s``, ``30m``, ``1h`` or ``2d``; UsageError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match[1]) <= 0:
        raise UsageError(f"--ttl {text!r} is not a duration: use e.g. 3600, 30m, 1h or 2d")
    return int(match[1]) * _UNIT_S[match[2]]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("token", help="create join tokens for edge nodes")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = sub.add_parser(
        "create", help="print a join token (pins the cluster CA; expires; works once)"
    )
    add_global_options(create, suppress=True)
    create.add_argument(
        "--ttl", default="1h", help="how long it is valid: 3600, 30m, 1h, 2d (default 1h)"
    )
    create.add_argument(
        "--node", default=None, metavar="NAME", help="only this node may join (needed to re-join)"
    )
    create.set_defaults(func=run_create)


def run_create(args: argparse.Namespace) -> int:
    from edgeweave.cli.context import open_client

    ttl_s = parse_duration_s(args.ttl)
    with open_client(args) as client:
        answer = client.create_join_token(ttl_s, args.node)
    print(answer["token"])
    print(f"expires at {answer.get('expiresAt', '?')}", file=sys.stderr)
    return 0
