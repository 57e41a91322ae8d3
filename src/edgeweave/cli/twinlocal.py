"""``edgeweave twin set DEVICE PROP=VALUE --local``: a desired value set on the node itself.

For when the cloud is away (KubeEdge has no such thing): the command publishes a KubeEdge
``twin/update`` with ``expected`` values to the agent's MQTT bus — the URL is read from the
agent's status file in ``--data``, or given with ``--mqtt`` — and waits for the agent's
``twin/update/result``. The agent reports the value to the cloud when it can; the cloud keeps
it unless its own desired value changed meanwhile (then the cloud's wins and an event says so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from edgeweave.cli.context import UsageError

WAIT_S = 10.0


def bus_url(args: argparse.Namespace) -> str:
    if args.mqtt:
        return str(args.mqtt)
    from edgeweave.cli.edge import data_dir
    from edgeweave.edge.localstatus import read_local_status

    status = read_local_status(data_dir(args.data))
    url = (status.get("bus") or {}).get("url")
    if not isinstance(url, str) or not url:
        raise UsageError("the agent's status file names no MQTT bus; pass --mqtt URL")
    return url


async def publish_local(url: str, namespace: str, device: str, values: dict[str, str]) -> Any:
    from edgeweave.transport.mqtt import open_mqtt_client

    base = f"$hw/events/device/{namespace}/{device}/twin/update"
    event_id = uuid.uuid4().hex
    twin = {key: {"expected": {"value": value}} for key, value in values.items()}
    async with open_mqtt_client(url) as client:
        await client.subscribe(f"{base}/result", qos=1)
        payload = {"event_id": event_id, "twin": twin}
        await client.publish(base, json.dumps(payload).encode(), qos=1)
        async with asyncio.timeout(WAIT_S):
            async for message in client:
                body = json.loads(message.payload)
                if isinstance(body, dict) and body.get("event_id") == event_id:
                    return body
    return None  # pragma: no cover - the iterator only ends by an error


def set_locally(args: argparse.Namespace, ns: str, values: dict[str, str | None]) -> int:
    if any(v is None for v in values.values()):
        raise UsageError("--local cannot clear a desired value (PROP= is for the cloud)")
    clean = {k: v for k, v in values.items() if v is not None}
    try:
        result = asyncio.run(publish_local(bus_url(args), ns, args.device, clean))
    except TimeoutError:
        print(f"no answer from the agent's bus within {WAIT_S:.0f} s", file=sys.stderr)
        return 1
    if result.get("code"):
        print(f"refused ({result['code']}): {result.get('reason', '')}", file=sys.stderr)
        return 1
    for key, value in clean.items():
        print(f"{args.device}: {key} desired = {value} (set on this node)")
    return 0
