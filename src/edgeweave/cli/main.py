"""The ``edgeweave`` command: parse the command line, run one subcommand, map errors to exits.

Each subcommand lives in its own module with the same hook::

    def add_parser(subparsers) -> None:      # argparse's _SubParsersAction
        p = subparsers.add_parser("NAME", help="...")
        ...
        p.set_defaults(func=run)             # run(args: argparse.Namespace) -> int

Command modules import only argparse and light helpers at module level and do the rest inside
``run``, because ``edgeweave get`` must start in well under 300 ms; an invocation imports only
its own command's module (:data:`COMMANDS`), ``--help`` and unknown words the whole parser.
Exit status: 0 ok, 1 an API or user error (one ``error: ...`` line on stderr, never a
traceback for an :class:`EdgeweaveError`), 2 a usage error, 130 on Ctrl-C.
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

# every subcommand module registers itself with the hook above; the top-level words each
# registers (tests/unit/test_cli_commands.py checks this table against what they register)
COMMANDS: dict[str, str] = {
    "apply": "edgeweave.cli.apply",
    "get": "edgeweave.cli.get",
    "describe": "edgeweave.cli.describe",
    "delete": "edgeweave.cli.delete",
    "label": "edgeweave.cli.label",
    "version": "edgeweave.cli.version",
    "config": "edgeweave.cli.config_view",
    "cloud": "edgeweave.cli.cloud",
    "edge": "edgeweave.cli.edge",
    "demo": "edgeweave.cli.demo",
    "token": "edgeweave.cli.token",
    "artifact": "edgeweave.cli.artifact",
    "logs": "edgeweave.cli.logs",
    "mapper": "edgeweave.cli.mapper",
    "twin": "edgeweave.cli.twin",
    "repo": "edgeweave.cli.repo",
    "file": "edgeweave.cli.file",
    "commit": "edgeweave.cli.commit",
    "pipeline": "edgeweave.cli.pipeline",
    "job": "edgeweave.cli.job",
    "datum": "edgeweave.cli.job",
    "lineage": "edgeweave.cli.lineage",
    "workflow": "edgeweave.cli.workflow",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with a known ``command``, one holding only that command's module
    (the usage and the help of that command are the same): importing every command module
    and building every subparser was about half of ``edgeweave get``'s start."""
    parser = argparse.ArgumentParser(
        prog="edgeweave",
        description="Manage an edgeweave cloud: nodes, apps, devices, services and pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"edgeweave {edgeweave.__version__}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command word in ``argv`` (after the global options), or None."""
    first = argparse.ArgumentParser(add_help=False)
    add_global_options(first)
    first.add_argument("command", nargs="?")
    try:
        known, _ = first.parse_known_args(argv)
    except SystemExit:  # a global option without its value: the whole parser will say so
        return None
    word = known.command
    return word if isinstance(word, str) else None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(args_list))
    try:
        args = parser.parse_args(args_list)
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
