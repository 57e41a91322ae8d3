"""``edgeweave artifact push FILE``: upload a file to the cloud's object store.

Hashes the file, asks the cloud whether it already has that digest (``HEAD``) and uploads
(streamed ``PUT``) only when it does not. Prints the digest ``sha256:...`` alone on stdout so
it can go straight into an App's ``artifacts``; notes go to stderr. Imports the client only
inside ``run`` (see :mod:`edgeweave.cli.main`).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgeweave.cli.context import add_global_options
from edgeweave.errors import ConfigError

if TYPE_CHECKING:
    from edgeweave.client.http import Client

CHUNK_BYTES = 1024 * 1024


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("artifact", help="store files for apps (content-addressed)")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="artifact_command", metavar="COMMAND", required=True)
    push = sub.add_parser("push", help="upload FILE (skipped when stored); print its digest")
    add_global_options(push, suppress=True)
    push.add_argument("file", type=Path, metavar="FILE")
    push.set_defaults(func=run_push)


def file_digest(path: Path) -> tuple[str, int]:
    """``("sha256:<hex>", size)`` of a file; ConfigError when it cannot be read."""
    hasher = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
    return "sha256:" + hasher.hexdigest(), size


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def push_file(client: Client, path: Path) -> tuple[str, bool]:
    """Upload ``path`` unless the cloud has it; ``(digest, uploaded)``."""
    digest, size = file_digest(path)
    if client.object_size(digest) is not None:
        return digest, False
    client.put_object(digest, _chunks(path), size)
    return digest, True


def run_push(args: argparse.Namespace) -> int:
    from edgeweave.cli.context import open_client

    if not args.file.is_file():
        raise ConfigError(f"{args.file} is not a file")
    with open_client(args) as client:
        digest, uploaded = push_file(client, args.file)
    if not uploaded:
        print(f"{digest} (already stored)", file=sys.stderr)
    print(digest)
    return 0
