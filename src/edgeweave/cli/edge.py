"""`edgeweave edge join|run|status|file`: the commands run on an edge node.

`join` makes the node's identity (key, certificate, cloud address) in its data dir; `run`
starts the agent; `status` reads the agent's local state and works without the cloud;
`file put` (:mod:`.edgefile`) puts a file into one of the node's repos through the agent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeweave.cli import edgefile
from edgeweave.errors import ConfigError

DEFAULT_DATA = Path("data/edge")
DATA_ENV = "EDGEWEAVE_DATA_DIR"
DATA_HELP = f"data dir (default: ${DATA_ENV}, else {DEFAULT_DATA})"


def data_dir(arg: Path | None) -> Path:
    """``--data`` when given, else ``$EDGEWEAVE_DATA_DIR``, else ``data/edge``."""
    if arg is not None:
        return arg
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else DEFAULT_DATA


def add_parser(subparsers: Any) -> None:
    edge = subparsers.add_parser("edge", help="join and run an edge node")
    sub = edge.add_subparsers(dest="edge_command", metavar="COMMAND", required=True)

    join = sub.add_parser("join", help="join this node to a cloud")
    join.add_argument("--server", required=True, help="cloud API URL, https://HOST:PORT")
    join.add_argument("--token", required=True, help="from `edgeweave token create`")
    join.add_argument("--name", required=True, help="node name")
    join.add_argument("--data", type=Path, default=None, help=DATA_HELP)
    join.add_argument("--labels", default="", help="k=v,k=v labels for node selectors")
    join.set_defaults(func=run_join)

    run = sub.add_parser("run", help="run the agent (until SIGINT/SIGTERM)")
    run.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data dir (default: data_dir from --settings or $EDGEWEAVE_DATA_DIR, else data/edge)",
    )
    run.add_argument("--settings", type=Path, default=None, metavar="FILE")
    run.add_argument(
        "--stop-apps-on-exit",
        action="store_true",
        default=None,
        help="stop apps when the agent exits (default: keep them running)",
    )
    run.add_argument(
        "--mqtt",
        default=None,
        metavar="URL",
        help="use this MQTT broker (mqtt://host:port) instead of the embedded one",
    )
    run.add_argument(
        "--mqtt-port",
        type=int,
        default=None,
        metavar="PORT",
        help="the embedded broker's port on 127.0.0.1 (default 1884; 0: any free port)",
    )
    run.add_argument(
        "--advertise-address",
        default=None,
        metavar="IP",
        help="the address other nodes dial for this node's apps (mesh.advertise_address)",
    )
    run.add_argument(
        "--dns-listen",
        default=None,
        metavar="HOST:PORT",
        help="where the mesh DNS listens (mesh.dns_listen; default auto)",
    )
    run.set_defaults(func=run_agent)

    status = sub.add_parser("status", help="local state of this node (works offline)")
    status.add_argument("--data", type=Path, default=None, help=DATA_HELP)
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    status.set_defaults(func=run_status)
    edgefile.add_parser(sub, DATA_HELP)


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ConfigError(f"--labels: {part!r} is not key=value")
        labels[key.strip()] = value.strip()
    from edgeweave.models.meta import check_labels

    try:
        return check_labels(labels)
    except ValueError as e:
        raise ConfigError(f"--labels: {e}") from e


def run_join(args: argparse.Namespace) -> int:
    import asyncio

    from edgeweave.edge.cloudapi import join

    data = data_dir(args.data)
    identity = asyncio.run(
        join(args.server, args.token, args.name, data, parse_labels(args.labels))
    )
    print(f"node {identity.node} joined; hub {identity.hub_url}")
    print(f"start the agent with: edgeweave edge run --data {data}")
    return 0


def run_agent(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from edgeweave.config.edge import load_edge_settings
    from edgeweave.edge.agent import run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_edge_settings(
        file=args.settings,
        overrides={
            "data_dir": args.data,
            "runtime.stop_apps_on_exit": args.stop_apps_on_exit,
            "devices.mqtt_url": args.mqtt,
            "devices.broker_port": args.mqtt_port,
            "mesh.advertise_address": args.advertise_address,
            "mesh.dns_listen": args.dns_listen,
        },
    )
    asyncio.run(run(settings))
    return 0


def run_status(args: argparse.Namespace) -> int:
    from edgeweave.edge.localstatus import read_local_status

    status = read_local_status(data_dir(args.data))
    if args.output == "json":
        json.dump(status, sys.stdout, indent=2)
        print()
        return 0
    print(f"node:       {status['node']}")
    print(f"cloud:      {status['link']['state']} ({status['link'].get('detail', '')})")
    print(f"outbox:     {status['outbox']['entries']} entries queued")
    print(f"objects:    {status['objects']} desired objects held locally")
    mesh = status.get("mesh")
    if mesh:
        print(f"mesh DNS:   {mesh.get('dns') or 'not listening'}")
    rows = status["apps"]
    if not rows:
        print("apps:       none")
    else:
        _print_apps(rows)
    if mesh and mesh.get("services"):
        _print_services(mesh)
    pipelines = status.get("pipelines")
    if pipelines:
        _print_pipelines(pipelines)
    return 0


def _print_pipelines(pipelines: dict[str, Any]) -> None:
    print()
    print(f"{'PIPELINE':<24} {'STATE':<10} {'LAST JOB':<14} MESSAGE")
    for name, st in pipelines.items():
        job = st.get("lastJob") or {}
        last = f"{job.get('id', '')[:8]} {job.get('state', '')}" if job else "-"
        print(f"{name:<24} {st.get('state', ''):<10} {last:<14} {st.get('message', '')}")


def _print_apps(rows: list[dict[str, Any]]) -> None:
    print()
    width = max(len(r["app"]) for r in rows)
    print(f"{'APP':<{width}}  {'PHASE':<10} {'READY':<6} {'PID':<8} {'RESTARTS':<8} MESSAGE")
    for r in rows:
        print(
            f"{r['app']:<{width}}  {r['phase']:<10} {str(r['ready']).lower():<6} "
            f"{r.get('pid') or '-'!s:<8} {r.get('restarts', 0)!s:<8} {r.get('message', '')}"
        )


def _print_services(mesh: dict[str, Any]) -> None:
    """One line per service port: where it listens, and each endpoint with its path."""
    print()
    print(f"{'SERVICE':<28} {'LISTEN':<24} ENDPOINTS")
    for service in mesh["services"]:
        for port in service["ports"]:
            endpoints = ", ".join(
                f"{e['node']}/{e['target']} {e['path']}{'' if e['healthy'] else ' (unhealthy)'}"
                for e in port["endpoints"]
            )
            listen = port.get("listen") or "-"
            print(f"{service['service']:<28} {listen:<24} {endpoints or '-'}")
