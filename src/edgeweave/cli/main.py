"""The ``edgeweave`` command: parse the command line, run one subcommand, map errors to exits.

Each subcommand lives in its own module with the same hook::

    def add_parser(subparsers) -> None:      # argparse's _SubParsersAction
        p = subparsers.add_parser("NAME", help="...")
        ...
        p.set_defaults(func=run)             # run(args: argparse.Namespace) -> int

Command modules import only argparse and light helpers at module level and do the rest inside
``run``, because every invocation builds the whole parser and ``edgeweave get`` must start in
well under 300 ms. Exit status: 0 ok, 1 an API or user error (one ``error: ...`` line on
stderr, never a traceback for an :class:`EdgeweaveError`), 2 a usage error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import edgeweave
from edgeweave.cli.context import UsageError, add_global_options
from edgeweave.errors import EdgeweaveError

# every subcommand module registers itself with the hook above
COMMAND_MODULES = (
    "edgeweave.cli.apply",
    "edgeweave.cli.get",
    "edgeweave.cli.describe",
    "edgeweave.cli.delete",
    "edgeweave.cli.label",
    "edgeweave.cli.version",
    "edgeweave.cli.config_view",
    "edgeweave.cli.cloud",
    "edgeweave.cli.edge",
    "edgeweave.cli.demo",
    "edgeweave.cli.token",
    "edgeweave.cli.artifact",
    "edgeweave.cli.logs",
    "edgeweave.cli.mapper",
    "edgeweave.cli.twin",
    "edgeweave.cli.repo",
    "edgeweave.cli.file",
    "edgeweave.cli.commit",
    "edgeweave.cli.pipeline",
    "edgeweave.cli.job",
    "edgeweave.cli.lineage",
    "edgeweave.cli.workflow",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeweave",
        description="Manage an edgeweave cloud: nodes, apps, devices, services and pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"edgeweave {edgeweave.__version__}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or argparse's own usage error (status 2)
        return e.code if isinstance(e.code, int) else 2
    try:
        code = args.func(args)
        sys.stdout.flush()
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except EdgeweaveError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`edgeweave get apps | head`): not an error worth a word
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
