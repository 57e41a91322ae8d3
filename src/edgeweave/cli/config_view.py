"""``edgeweave config view``: which client config is in use and what it says.

The token is shown only by its first characters and the CA only as "DATA+OMITTED", so the
output can be pasted into a bug report. Reads the file; never contacts the cloud.
"""

from __future__ import annotations

import argparse

from edgeweave.cli.context import add_global_options


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("config", help="show the client config")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    view = sub.add_parser("view", help="print the config in use (secrets redacted)")
    add_global_options(view, suppress=True)
    view.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeweave.cli.output import to_yaml
    from edgeweave.client.config import load_config

    config = load_config(getattr(args, "config", None))
    print(f"# {config.source}")
    print(to_yaml(config.redacted()).rstrip("\n"))
    return 0
