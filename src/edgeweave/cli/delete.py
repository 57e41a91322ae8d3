"""``edgeweave delete KIND NAME...`` and ``edgeweave delete -f FILE``: remove objects.

Prints ``<singular>.<group>/<name> deleted`` per object. A missing object is an error unless
``--ignore-not-found``; one failure does not stop the others, and the command exits 1 after.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from edgeweave.cli.context import UsageError, add_global_options, namespace, open_client
from edgeweave.errors import EdgeweaveError, NotFound

if TYPE_CHECKING:
    from edgeweave.client.discovery import KindRef
    from edgeweave.client.http import Client


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("delete", help="delete objects by name or by manifest")
    add_global_options(p, suppress=True)
    p.add_argument("kind", nargs="?")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument(
        "-f", "--filename", action="append", metavar="FILE", help="delete what FILE holds"
    )
    p.add_argument("--ignore-not-found", action="store_true", help="a missing object is fine")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.filename) == bool(args.kind):
        raise UsageError("give either KIND NAME... or -f FILE")
    if args.kind and not args.names:
        raise UsageError(f"which {args.kind}? give at least one NAME")
    failed = 0
    with open_client(args) as client:
        default_ns = namespace(args, client)
        targets: list[tuple[str, KindRef, str, str | None]] = []
        if args.filename:
            from edgeweave.cli.manifests import read_sources

            for doc in read_sources(args.filename):
                try:
                    ref = client.discover().for_object(doc.obj)
                    meta = doc.obj.get("metadata") or {}
                    ns = (meta.get("namespace") or default_ns) if ref.namespaced else None
                    targets.append((doc.source + ": ", ref, str(meta.get("name", "")), ns))
                except EdgeweaveError as e:
                    failed += 1
                    print(f"error: {doc.source}: {e.message}", file=sys.stderr)
        else:
            ref = client.discover().resolve(args.kind)
            targets = [("", ref, name, default_ns) for name in args.names]
        for where, ref, name, ns in targets:
            if not delete_one(
                client, ref, name, ns, ignore_missing=args.ignore_not_found, where=where
            ):
                failed += 1
    return 1 if failed else 0


def delete_one(
    client: Client, ref: KindRef, name: str, ns: str | None, *, ignore_missing: bool, where: str
) -> bool:
    try:
        client.delete(ref, name, ns)
    except NotFound as e:
        if ignore_missing:
            return True
        print(f"error: {where}{e.message}", file=sys.stderr)
        return False
    except EdgeweaveError as e:
        print(f"error: {where}{ref.kind} {name}: {e.message}", file=sys.stderr)
        return False
    print(f"{ref.singular}.{ref.group}/{name} deleted", flush=True)
    return True
