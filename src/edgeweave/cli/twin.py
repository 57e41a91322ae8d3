"""``edgeweave twin get|set|history``: a Device's twins through the cloud's twin API.

- ``twin get DEVICE [-o table|json|yaml]``: per property its type, desired value (the cloud's
  ``spec``), reported value and the desired value the node last observed (the node's
  ``status``), and the age of the report;
- ``twin set DEVICE PROP=VALUE [PROP=VALUE ...]``: new desired values, checked by the cloud
  against the DeviceModel and sent down to the device's node (``PROP=`` clears one); with
  ``--local``, set on the node through the agent's bus (:mod:`edgeweave.cli.twinlocal`);
- ``twin history DEVICE PROP [--since 1h] [--limit N] [-o table|json]``: reported values.

``set`` is built in two steps so a variant can be added without touching the rest: the
parser is made by :func:`add_set_parser` (add an option such as ``--local`` there) and
:func:`run_set` parses the assignments, then hands them to one target (today
:func:`set_on_cloud`; branch on the new option before it). Like every command module, only
argparse and light helpers are imported at module level (see :mod:`edgeweave.cli.main`).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeweave.cli.context import UsageError, add_global_options, namespace, open_client

if TYPE_CHECKING:
    from edgeweave.client.http import Client

TWIN_COLUMNS = ("PROPERTY", "TYPE", "DESIRED", "REPORTED", "OBSERVED-DESIRED", "AGE")
HISTORY_COLUMNS = ("TIME", "VALUE")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("twin", help="read and set device twins (desired, reported values)")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="twin_command", metavar="COMMAND", required=True)
    add_get_parser(sub)
    add_set_parser(sub)
    add_history_parser(sub)


def add_get_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = sub.add_parser("get", help="show a device's desired and reported values")
    add_global_options(p, suppress=True)
    p.add_argument("device", metavar="DEVICE", help="the Device's name")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=run_get)
    return p


def add_set_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = sub.add_parser("set", help="set desired values of a device's properties")
    add_global_options(p, suppress=True)
    p.add_argument("device", metavar="DEVICE", help="the Device's name")
    p.add_argument(
        "assignments", nargs="+", metavar="PROP=VALUE", help="new desired values; PROP= clears"
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="set it on this node through the agent's bus (works with the cloud away)",
    )
    p.add_argument("--data", type=Path, default=None, help="the agent's data dir (with --local)")
    p.add_argument("--mqtt", default=None, metavar="URL", help="the agent's bus (with --local)")
    p.set_defaults(func=run_set)
    return p


def add_history_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = sub.add_parser("history", help="reported values of one property over time")
    add_global_options(p, suppress=True)
    p.add_argument("device", metavar="DEVICE", help="the Device's name")
    p.add_argument("property", metavar="PROP", help="the property")
    p.add_argument("--since", metavar="DURATION", help="only the last 90s, 30m, 1h, 2d, ...")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="newest N (default 1000)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(func=run_history)
    return p


# ---- get -------------------------------------------------------------------------------------


def run_get(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        view = client.get_twin(namespace(args, client), args.device)
    print_view(view, args.output)
    return 0


def print_view(view: dict[str, Any], output: str) -> None:
    from edgeweave.cli import output as out

    if output == "json":
        print(out.to_json(view))
    elif output == "yaml":
        print(out.to_yaml(view).rstrip("\n"))
    else:
        print(out.render_table(twin_rows(view)))


def twin_rows(view: dict[str, Any], now_s: float | None = None) -> list[list[str]]:
    """The ``twin get`` table, header first."""
    from edgeweave.cli.output import NONE, cell, format_age

    now = time.time() if now_s is None else now_s
    rows = [list(TWIN_COLUMNS)]
    for prop in view.get("properties") or []:
        at = prop.get("reportedAt")
        age = format_age(now - at / 1000) if isinstance(at, int | float) else NONE
        rows.append(
            [
                cell(prop.get("name")),
                cell(prop.get("type")),
                cell(prop.get("desired")),
                cell(prop.get("reported")),
                cell(prop.get("observedDesired")),
                age,
            ]
        )
    return rows


# ---- set -------------------------------------------------------------------------------------


def parse_assignments(items: list[str]) -> dict[str, str | None]:
    """``["a=1", "b="]`` → ``{"a": "1", "b": None}`` (an empty value clears); UsageError for
    an item without ``=``, an empty name or a property named twice."""
    values: dict[str, str | None] = {}
    for item in items:
        prop, sep, value = item.partition("=")
        if not sep or not prop:
            raise UsageError(f"{item!r} is not PROP=VALUE (e.g. target-temperature=22)")
        if prop in values:
            raise UsageError(f"property {prop!r} is given twice")
        values[prop] = value or None
    return values


def run_set(args: argparse.Namespace) -> int:
    values = parse_assignments(args.assignments)
    if args.local:
        from edgeweave.cli.twinlocal import set_locally

        return set_locally(args, getattr(args, "namespace", None) or "default", values)
    return set_on_cloud(args, values)


def set_on_cloud(args: argparse.Namespace, values: dict[str, str | None]) -> int:
    """Write the desired values through the cloud, which sends them to the device's node."""
    with open_client(args) as client:
        view = client.set_twin(namespace(args, client), args.device, values)
    shown = ", ".join(f"{k}={v if v is not None else '<none>'}" for k, v in values.items())
    name = (view.get("device") or {}).get("name") or args.device
    print(f"device.devices.kubeedge.io/{name} desired: {shown}")
    return 0


# ---- history ---------------------------------------------------------------------------------


def since_ms(duration: str | None, now_s: float | None = None) -> int | None:
    """Unix ms of ``now - duration`` (``90s``, ``30m``, ``1h``, ``2d``; plain seconds too)."""
    if duration is None:
        return None
    from edgeweave.cli.token import parse_duration_s

    try:
        seconds = parse_duration_s(duration)
    except UsageError as e:
        raise UsageError(
            f"--since {duration!r} is not a duration: use e.g. 90s, 30m, 1h, 2d"
        ) from e
    now = time.time() if now_s is None else now_s
    return max(0, int((now - seconds) * 1000))


def format_time_ms(ms: Any) -> str:
    """Unix ms as RFC 3339 UTC with milliseconds (``2026-11-26T09:00:00.500Z``)."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "<none>"
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def run_history(args: argparse.Namespace) -> int:
    import sys

    from edgeweave.cli import output as out

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with open_client(args) as client:
        items = history(client, args)
    if args.output == "json":
        print(out.to_json({"items": items}))
        return 0
    if not items:
        print(f"No reported values of {args.property} on {args.device}.", file=sys.stderr)
        return 0
    rows = [list(HISTORY_COLUMNS)]
    rows.extend([format_time_ms(i.get("timestamp")), out.cell(i.get("value"))] for i in items)
    print(out.render_table(rows))
    return 0


def history(client: Client, args: argparse.Namespace) -> list[dict[str, Any]]:
    return client.twin_history(
        namespace(args, client),
        args.device,
        args.property,
        since_ms=since_ms(args.since),
        limit=args.limit,
    )
