"""``edgeweave get KIND [NAME]``: list or read objects, as a table, JSON or YAML.

This is the command people run most and the one the startup benchmark times, so it keeps to
the client (plain dicts), argparse and the output helpers: no pydantic, no kind registry, and
yaml only for ``-o yaml``. ``--watch`` lists, then prints each change as it streams, relisting
when the server says the watch is too old (410 Gone), until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from edgeweave.cli.context import add_global_options, namespace, open_client

if TYPE_CHECKING:
    from edgeweave.client.discovery import KindRef
    from edgeweave.client.http import Client

FORMATS = ("table", "wide", "json", "yaml", "name")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("get", help="list objects of a kind, or show one")
    add_global_options(p, suppress=True)
    p.add_argument("kind", help="kind, plural, singular or short name (apps, app, App, ...)")
    p.add_argument("name", nargs="?", help="one object's name")
    p.add_argument("-o", "--output", choices=FORMATS, default="table")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, e.g. role=camera")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list every namespace")
    p.add_argument("-w", "--watch", action="store_true", help="keep printing changes (Ctrl-C)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        ref = client.discover().resolve(args.kind)
        all_ns = bool(args.all_namespaces and ref.namespaced and not args.name)
        ns = None if all_ns else namespace(args, client)
        if args.name:
            items = [client.get(ref, args.name, ns)]
            version = ""
        else:
            items, version = client.list_all(ref, ns, args.selector)
        print_objects(ref, items, args.output, all_ns, version, single=bool(args.name))
        if not items and not args.watch:
            where = "" if not ref.namespaced else " in any namespace" if all_ns else f" in {ns}"
            print(f"No {ref.plural} found{where}.", file=sys.stderr)
        if args.watch:
            return watch(client, ref, args, ns, version or _version_of(items))
    return 0


def print_objects(
    ref: KindRef,
    items: list[dict[str, Any]],
    output: str,
    all_ns: bool,
    version: str = "",
    *,
    single: bool = False,
) -> None:
    from edgeweave.cli import output as out

    if output in ("json", "yaml"):
        doc: Any = items[0] if single and items else out.as_list(items, version)
        print(out.to_json(doc) if output == "json" else out.to_yaml(doc).rstrip("\n"))
        return
    if output == "name":
        for obj in items:
            print(f"{ref.singular}.{ref.group}/{obj['metadata']['name']}")
        return
    if not items:
        return
    if ref.kind == "Endpoints":  # one row per endpoint reads better than one per object
        from edgeweave.cli.endpoints import endpoints_table

        print(endpoints_table(items, wide=output == "wide", all_namespaces=all_ns))
        return
    columns = columns_for(ref, output)
    rows = [out.table_headers(columns, all_ns)]
    rows.extend(out.table_row(obj, columns, all_ns) for obj in items)
    print(out.render_table(rows))


def columns_for(ref: KindRef, output: str) -> tuple[Any, ...]:
    if output != "wide":
        return ref.columns
    # keep AGE last when the kind's columns carry it
    from edgeweave.cli.output import AGE_PATH, column_path

    age = [c for c in ref.columns if column_path(c.json_path) == AGE_PATH]
    rest = [c for c in ref.columns if c not in age]
    return (*rest, *ref.wide_columns, *age)


def watch(client: Client, ref: KindRef, args: argparse.Namespace, ns: str | None, rv: str) -> int:
    from edgeweave.cli import output as out
    from edgeweave.errors import Gone

    all_ns = ns is None and ref.namespaced
    columns = columns_for(ref, args.output)
    widths = [len(h) for h in out.table_headers(columns, all_ns)]
    try:
        while True:
            try:
                for event in client.watch(ref, ns, rv, args.selector, args.name):
                    obj = event["object"]
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if event["type"] == "BOOKMARK":
                        continue
                    print_event(event, args.output, columns, all_ns, widths)
                return 0  # the server ended the stream
            except Gone:
                _, rv = client.list_all(ref, ns, args.selector)  # too old: start from now
    except KeyboardInterrupt:
        return 0


def print_event(
    event: dict[str, Any], output: str, columns: Any, all_ns: bool, widths: list[int]
) -> None:
    from edgeweave.cli import output as out

    if output == "json":
        print(json.dumps(event, separators=(",", ":")), flush=True)
    elif output == "yaml":
        print("---\n" + out.to_yaml(event).rstrip("\n"), flush=True)
    elif output == "name":
        print(f"{event['type']} {event['object']['metadata']['name']}", flush=True)
    else:
        row = out.table_row(event["object"], columns, all_ns)
        print(out.render_table([row], widths), flush=True)


def _version_of(items: list[dict[str, Any]]) -> str:
    versions = [int((o.get("metadata") or {}).get("resourceVersion") or 0) for o in items]
    return str(max(versions)) if versions else ""
