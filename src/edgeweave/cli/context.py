"""What every command that talks to the cloud needs: a client and the namespace to use.

Built from the global options (``--config``, ``-n/--namespace``). Imports the client (and so
httpx) only when a command asks for it, so ``edgeweave --help`` and ``edgeweave version
--client`` stay instant. No printing here: commands decide what to say.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from edgeweave.errors import ConfigError

if TYPE_CHECKING:
    from edgeweave.client.http import Client


class UsageError(ConfigError):
    """The command line itself is wrong (exit status 2, like argparse's own errors)."""


def open_client(args: argparse.Namespace) -> Client:
    """A client for the config named by ``--config`` (or found by the usual order)."""
    from edgeweave.client.config import load_config
    from edgeweave.client.http import Client

    return Client(load_config(getattr(args, "config", None)))


def namespace(args: argparse.Namespace, client: Client) -> str:
    """``-n`` if given, else the config's namespace (``default``)."""
    given = getattr(args, "namespace", None)
    return str(given) if given else client.namespace


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--config`` and ``-n``; on subcommands ``suppress`` keeps the top-level value."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="client config (default: $EDGEWEAVE_CONFIG, then ~/.config/edgeweave/config.yaml)",
    )
    parser.add_argument(
        "-n", "--namespace", metavar="NS", default=default, help="namespace (default: default)"
    )
