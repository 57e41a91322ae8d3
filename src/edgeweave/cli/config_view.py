"""``edgeweave config view`` and ``edgeweave config defaults``.

``view``: which client config is in use and what it says. The token is shown only by its
first characters and the CA only as "DATA+OMITTED", so the output can be pasted into a bug
report. Reads the file; never contacts the cloud.

``defaults``: every cloud setting with its default and description, as commented YAML (a
starting point for ``cloud serve --settings FILE``); with ``--edge`` the edge agent's settings
instead (for ``edge run --settings FILE``). Reads no file and contacts nothing.
"""

from __future__ import annotations

import argparse

from edgeweave.cli.context import add_global_options


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("config", help="show the client config or the cloud's defaults")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    view = sub.add_parser("view", help="print the config in use (secrets redacted)")
    add_global_options(view, suppress=True)
    view.set_defaults(func=run)
    defaults = sub.add_parser(
        "defaults", help="print every cloud setting with its default, as commented YAML"
    )
    defaults.add_argument(
        "--edge", action="store_true", help="the edge agent's settings (edge run --settings)"
    )
    defaults.set_defaults(func=run_defaults)


def run(args: argparse.Namespace) -> int:
    from edgeweave.cli.output import to_yaml
    from edgeweave.client.config import load_config

    config = load_config(getattr(args, "config", None))
    print(f"# {config.source}")
    print(to_yaml(config.redacted()).rstrip("\n"))
    return 0


def run_defaults(args: argparse.Namespace) -> int:
    if args.edge:
        from edgeweave.config.edge import describe_edge_defaults

        print(describe_edge_defaults(), end="")
        return 0
    from edgeweave.config.settings import describe_defaults

    print(describe_defaults(), end="")
    return 0
