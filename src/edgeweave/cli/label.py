"""``edgeweave label KIND NAME KEY=VALUE... KEY-...``: set or remove an object's labels.

kubectl's verb, done as one JSON merge patch of ``metadata.labels`` (other labels are kept):
``KEY=VALUE`` sets a label, ``KEY-`` removes it. The admin's way to give a node a label the
join refuses (those under ``edgeweave.io/``), e.g. ``edgeweave label node gpu-1
edgeweave.io/worker=cloud`` to make it a cloud worker (docs/pipelines.md).
"""

from __future__ import annotations

import argparse

from edgeweave.cli.context import UsageError, add_global_options, namespace, open_client


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("label", help="set (KEY=VALUE) or remove (KEY-) labels")
    add_global_options(p, suppress=True)
    p.add_argument("kind")
    p.add_argument("name")
    p.add_argument("changes", nargs="+", metavar="KEY=VALUE|KEY-")
    p.set_defaults(func=run)


def parse_changes(changes: list[str]) -> dict[str, str | None]:
    """``["a=1", "b-"]`` → ``{"a": "1", "b": None}`` (None removes); labels are checked."""
    from edgeweave.models.meta import check_labels

    out: dict[str, str | None] = {}
    for change in changes:
        if "=" in change:
            key, _, value = change.partition("=")
            try:
                check_labels({key: value})
            except ValueError as e:
                raise UsageError(str(e)) from None
            out[key] = value
        elif change.endswith("-") and len(change) > 1:
            out[change[:-1]] = None
        else:
            raise UsageError(f"{change!r}: write KEY=VALUE to set a label or KEY- to remove it")
    return out


def run(args: argparse.Namespace) -> int:
    labels = parse_changes(args.changes)
    with open_client(args) as client:
        ref = client.discover().resolve(args.kind)
        ns = namespace(args, client) if ref.namespaced else None
        client.patch(ref, args.name, ns, {"metadata": {"labels": labels}})
    print(f"{ref.singular}.{ref.group}/{args.name} labeled")
    return 0
