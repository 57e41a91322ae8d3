"""``edgeweave get endpoints``: one row per endpoint and service port, not per object.

An ``Endpoints`` object lists every instance behind a Service; one table row each reads better
than one cell holding them all. ``-o wide`` adds PATHS: how each consuming node reaches that
endpoint's node (``direct`` to its advertised address, or ``relay`` through the cloud), as the
nodes last reported it. Pure string building over plain dicts.
"""

from __future__ import annotations

from typing import Any

from edgeweave.cli.output import NONE, object_age, render_table


def _target(endpoint: dict[str, Any], port: dict[str, Any]) -> str:
    address = endpoint.get("address") or "-"
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port.get('targetPort')}"


def _paths(obj: dict[str, Any], node: str) -> str:
    paths = (obj.get("status") or {}).get("paths") or {}
    seen = [
        f"{consumer}:{peers[node]}" for consumer, peers in sorted(paths.items()) if node in peers
    ]
    return ",".join(seen) or NONE


def endpoints_table(items: list[dict[str, Any]], *, wide: bool, all_namespaces: bool) -> str:
    head = ["NAMESPACE"] if all_namespaces else []
    head += ["NAME", "ENDPOINT", "PORT", "NODE", "APP", "READY"]
    head += ["PATHS", "AGE"] if wide else ["AGE"]
    rows = [head]
    for obj in items:
        meta = obj.get("metadata") or {}
        first = [str(meta.get("namespace") or NONE)] if all_namespaces else []
        name, age = str(meta.get("name") or NONE), object_age(obj)
        endpoints = obj.get("endpoints") or []
        if not endpoints:
            rows.append(
                [*first, name, NONE, NONE, NONE, NONE, NONE, *([NONE] if wide else []), age]
            )
        for endpoint in endpoints:
            node = str(endpoint.get("node") or NONE)
            for port in endpoint.get("ports") or []:
                label = f"{port.get('port')}" + (f"/{port['name']}" if port.get("name") else "")
                row = [*first, name, _target(endpoint, port), label, node]
                row += [
                    str(endpoint.get("app") or NONE),
                    "true" if endpoint.get("ready") else "false",
                ]
                if wide:
                    row.append(_paths(obj, node))
                rows.append([*row, age])
    return render_table(rows)
