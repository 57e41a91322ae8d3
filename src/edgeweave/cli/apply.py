"""``edgeweave apply -f FILE|DIR|-``: make the cloud hold what the manifests say.

Per object: create it when missing; otherwise update it unless it already matches, printing
``<singular>.<group>/<name> created|configured|unchanged``. "Matches" means the stored
labels, annotations, spec and other top-level fields (ConfigMap ``data``, ...) equal the
applied ones; when the server fills in defaults the stored object holds more than was applied,
so apply also records a hash of what it applied (annotation ``edgeweave.io/last-applied-hash``)
and treats "same hash and every applied field still stored" as unchanged. One failing object
does not stop the rest; the command then exits 1. Status is never sent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import TYPE_CHECKING, Any

from edgeweave.cli.context import add_global_options, namespace, open_client
from edgeweave.errors import Conflict, EdgeweaveError, InvalidObject, NotFound

if TYPE_CHECKING:
    from edgeweave.cli.manifests import Document
    from edgeweave.client.discovery import KindRef
    from edgeweave.client.http import Client

HASH_ANNOTATION = "edgeweave.io/last-applied-hash"
ENVELOPE = frozenset({"apiVersion", "kind", "metadata", "status"})
MAX_CONFLICT_RETRIES = 3


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("apply", help="create or update objects from manifests")
    add_global_options(p, suppress=True)
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a YAML/JSON file, a directory of them, or - for stdin (repeatable)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgeweave.cli.manifests import read_sources

    docs = read_sources(args.filename)
    failed = 0
    with open_client(args) as client:
        default_ns = namespace(args, client)
        for doc in docs:
            try:
                ref = client.discover().for_object(doc.obj)
                verb = apply_one(client, ref, doc, default_ns, getattr(args, "namespace", None))
            except EdgeweaveError as e:
                failed += 1
                for line in error_lines(doc, e, default_ns):
                    print(f"error: {line}", file=sys.stderr)
                continue
            print(f"{ref.singular}.{ref.group}/{doc.obj['metadata']['name']} {verb}", flush=True)
    return 1 if failed else 0


def apply_one(
    client: Client, ref: KindRef, doc: Document, default_ns: str, explicit_ns: str | None = None
) -> str:
    """Create or update one object; the verb to print."""
    obj = dict(doc.obj)
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise InvalidObject("the object has no metadata.name", field="metadata.name")
    namespace = (meta.get("namespace") or default_ns) if ref.namespaced else None
    if namespace is not None and explicit_ns and namespace != explicit_ns:
        raise InvalidObject(
            f"the manifest's namespace {namespace!r} does not match -n {explicit_ns!r}; "
            f"pass -n {namespace} or change the manifest",
            field="metadata.namespace",
        )
    desired = comparable(obj)
    digest = applied_hash(desired)
    meta = {**meta, "annotations": {**(meta.get("annotations") or {}), HASH_ANNOTATION: digest}}
    if namespace is not None:
        meta["namespace"] = namespace
    obj["metadata"] = meta
    obj.pop("status", None)
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            current = client.get(ref, meta["name"], namespace)
        except NotFound:
            client.create(obj)
            return "created"
        if is_unchanged(current, desired, digest):
            return "unchanged"
        meta["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        try:
            client.update(obj)
        except Conflict:
            continue  # someone wrote in between: re-read and compare again
        return "configured"
    raise Conflict(f"{ref.kind} {meta['name']}: kept changing while applying; try again")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of an object apply owns: labels, annotations and every non-envelope field."""
    meta = obj.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != HASH_ANNOTATION}
    out = {k: v for k, v in obj.items() if k not in ENVELOPE}
    out["labels"] = meta.get("labels") or {}
    out["annotations"] = annotations
    return out


def applied_hash(desired: dict[str, Any]) -> str:
    canonical = json.dumps(desired, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:32]


def is_unchanged(current: dict[str, Any], desired: dict[str, Any], digest: str) -> bool:
    stored = comparable(current)
    if stored == desired:
        return True
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    return annotations.get(HASH_ANNOTATION) == digest and contains(stored, desired)


def contains(stored: Any, applied: Any) -> bool:
    """Every field of ``applied`` is in ``stored`` with the same value (defaults may be extra)."""
    if isinstance(applied, dict) and isinstance(stored, dict):
        return all(k in stored and contains(stored[k], v) for k, v in applied.items())
    return bool(stored == applied)


def error_lines(doc: Document, e: EdgeweaveError, default_ns: str = "") -> list[str]:
    """``FILE: Kind ns/name: field: message`` lines for a failed object."""
    raw_meta = doc.obj.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(meta.get("name", "?"))
    ns = meta.get("namespace") or default_ns
    who = f"{doc.obj.get('kind', '?')} {ns + '/' if ns else ''}{name}"
    if not isinstance(e, InvalidObject):
        return [f"{doc.source}: {who}: {e.message}"]
    lines = []
    for problem in e.errors or [e.message]:
        named = e.field and e.field not in problem and len(e.errors) <= 1
        lines.append(f"{doc.source}: {who}: {e.field + ': ' if named else ''}{problem}")
    return lines
