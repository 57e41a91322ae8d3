"""``edgeweave describe KIND NAME``: one object, for a person to read.

Metadata as aligned ``Key: value`` lines, labels and annotations one per line, then spec,
status and any other top-level fields (ConfigMap ``data``) as indented YAML. Secret values are
never printed, only their sizes. Read-only; events will be added here when the API has them.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeweave.cli.context import add_global_options, namespace, open_client

_KEY_WIDTH = 14
_SECRET_KINDS = frozenset({"Secret"})


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("describe", help="show one object in detail")
    add_global_options(p, suppress=True)
    p.add_argument("kind")
    p.add_argument("name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        ref = client.discover().resolve(args.kind)
        obj = client.get(ref, args.name, namespace(args, client))
        meta = obj.get("metadata") or {}
        events = client.events(obj.get("kind"), meta.get("namespace") or "", meta.get("name"))
    print(describe(obj, events))
    return 0


def describe(obj: dict[str, Any], events: list[dict[str, Any]] | None = None) -> str:
    from edgeweave.cli.output import object_age

    meta = obj.get("metadata") or {}
    lines = [_pair("Name", meta.get("name"))]
    if meta.get("namespace"):
        lines.append(_pair("Namespace", meta["namespace"]))
    lines.append(_pair("Kind", f"{obj.get('kind')} ({obj.get('apiVersion')})"))
    lines.extend(_mapping("Labels", meta.get("labels")))
    lines.extend(_mapping("Annotations", meta.get("annotations")))
    created = meta.get("creationTimestamp")
    if created:
        lines.append(_pair("Created", f"{created} ({object_age(obj)} ago)"))
    for key, label in (
        ("uid", "UID"),
        ("resourceVersion", "Version"),
        ("generation", "Generation"),
    ):
        if meta.get(key) is not None:
            lines.append(_pair(label, meta[key]))
    secret = obj.get("kind") in _SECRET_KINDS
    for key, value in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        shown = value
        if secret and key in ("data", "stringData") and isinstance(value, dict):
            shown = {k: f"<{_secret_size(key, v)} bytes>" for k, v in value.items()}
        lines.extend(_block(key[:1].upper() + key[1:], shown))
    lines.extend(_events(events or []))
    return "\n".join(lines)


def _events(events: list[dict[str, Any]]) -> list[str]:
    if not events:
        return [_pair("Events", "<none>")]
    import time

    from edgeweave.cli.output import format_age

    rows = [("TYPE", "REASON", "AGE", "NODE", "MESSAGE")]
    now = time.time()
    for e in events:
        age = format_age(max(0.0, now - float(e.get("time") or now)))
        rows.append(
            (
                str(e.get("type")),
                str(e.get("reason")),
                age,
                str(e.get("node")),
                str(e.get("message")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = ["Events:"]
    for r in rows:
        out.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        )
    return out


def _pair(key: str, value: Any) -> str:
    return f"{key + ':':<{_KEY_WIDTH}}{value if value not in (None, '') else '<none>'}"


def _mapping(key: str, value: Any) -> list[str]:
    if not isinstance(value, dict) or not value:
        return [_pair(key, "<none>")]
    entries = [f"{k}={v}" for k, v in sorted(value.items())]
    return [_pair(key, entries[0])] + [" " * _KEY_WIDTH + e for e in entries[1:]]


def _block(key: str, value: Any) -> list[str]:
    from edgeweave.cli.output import to_yaml

    if value in (None, {}, []):
        return [_pair(key, "<none>")]
    if not isinstance(value, dict | list):
        return [_pair(key, value)]
    body = to_yaml(value).rstrip("\n").splitlines()
    return [f"{key}:"] + ["  " + line for line in body]


def _secret_size(field: str, value: Any) -> int:
    """The size of the secret itself: ``data`` values are base64, ``stringData`` plain."""
    text = str(value)
    if field == "data":
        import base64
        import binascii

        try:
            return len(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            return len(text)
    return len(text.encode())
