"""`edgeweave mapper run|config|simulate`: the built-in mappers and their test tools.

``run PROTOCOL --mqtt URL --node NODE --config FILE`` is what the edge agent starts for each
device protocol in use (as a system app); it runs until SIGTERM or SIGINT. ``config`` prints
the config file the agent would write, from manifests, to try a mapper without an agent.
``simulate modbus`` serves simulated thermostats over Modbus TCP and prints ``{"host",
"port", "units"}`` as one line of JSON on stdout once it listens, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

PROTOCOLS = ("modbus", "virtual")  # edgeweave.mappers.builtin.PROTOCOLS, without importing it
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_parser(subparsers: Any) -> None:
    mapper = subparsers.add_parser("mapper", help="run a built-in device mapper or a simulator")
    sub = mapper.add_subparsers(dest="mapper_command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="serve a node's devices of one protocol over the bus")
    run.add_argument("protocol", choices=PROTOCOLS, metavar="PROTOCOL", help="modbus | virtual")
    run.add_argument(
        "--mqtt",
        default="mqtt://127.0.0.1:1884",
        help="the agent's MQTT bus (default: mqtt://127.0.0.1:1884)",
    )
    run.add_argument("--node", required=True, help="the node whose devices this mapper serves")
    run.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="the agent's mapper config"
    )
    run.add_argument(
        "--seed", type=int, default=None, help="make virtual devices repeatable (tests, demos)"
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    run.set_defaults(func=run_mapper)

    config = sub.add_parser(
        "config", help="write the config file the agent would give a mapper (to try one alone)"
    )
    config.add_argument(
        "-f", "--filename", action="append", required=True, metavar="FILE|DIR",
        help="Device and DeviceModel manifests",
    )  # fmt: skip
    config.add_argument("--node", required=True, help="the devices with this nodeName")
    config.add_argument("--protocol", required=True, help="the devices with this protocolName")
    config.set_defaults(func=run_config)

    simulate = sub.add_parser("simulate", help="simulate devices for demos and tests")
    simulate.add_argument("kind", choices=["modbus"], help="modbus: smart-building thermostats")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=5020, help="0 picks a free port")
    simulate.add_argument("--units", default="1", help="unit ids (slaveID), e.g. 1,2")
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="time runs this many times faster"
    )
    simulate.add_argument("--seed", type=int, default=None, help="repeatable sensor noise")
    simulate.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"])
    simulate.set_defaults(func=run_simulator)


def run_mapper(args: argparse.Namespace) -> int:
    import asyncio

    from edgeweave.aio.clock import SystemClock
    from edgeweave.mappers.builtin import driver_factory
    from edgeweave.mappers.sdk import serve

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    clock = SystemClock()
    factory = driver_factory(args.protocol, clock=clock, seed=args.seed)
    asyncio.run(
        serve(
            factory,
            config_path=args.config,
            mqtt_url=args.mqtt,
            node=args.node,
            protocol=args.protocol,
            clock=clock,
        )
    )
    return 0


def run_config(args: argparse.Namespace) -> int:
    import json
    import sys

    from edgeweave.cli.manifests import read_sources
    from edgeweave.mappers.config import config_from_manifests

    objects = [doc.obj for doc in read_sources(args.filename)]
    doc = config_from_manifests(objects, node=args.node, protocol=args.protocol)
    json.dump(doc, sys.stdout, indent=1)
    print()
    if not doc["devices"]:
        print(
            f"warning: no Device has nodeName {args.node!r} and protocolName {args.protocol!r}",
            file=sys.stderr,
        )
    return 0


def run_simulator(args: argparse.Namespace) -> int:
    import asyncio

    from edgeweave.mappers.modbus.simulator import parse_units, serve_until_stopped

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    units = parse_units(args.units)
    asyncio.run(
        serve_until_stopped(args.host, args.port, units=units, speed=args.speed, seed=args.seed)
    )
    return 0
