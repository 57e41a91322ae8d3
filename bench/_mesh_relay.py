"""The relay half of ``bench/mesh.py``: a real fleet where one node reaches another only
through the cloud.

A cloud and two agents as processes (``edgeweave.cli.fleet.Fleet``): ``target`` runs an echo
App listening on 127.0.0.1 only and advertises 127.0.0.2, so nobody reaches it directly;
``consumer`` runs an idle App (so it receives the Service) and its mesh proxy is where the
client connects. Every byte then goes client → consumer's proxy → TLS WebSocket → the cloud's
hub → TLS WebSocket → target's agent → the echo app, and back. The baseline is the client
talking to the same echo app directly on loopback, in the same run.

Never writes to stdout (the benchmark's JSON goes there). :func:`relay_fleet` stops every
process it started.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeweave.cli.fleet import Fleet, free_port, wait_until

SERVICE_PORT = 18090
READY_TIMEOUT_S = 90.0

ECHO_APP = """\
import asyncio, sys
async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""
IDLE_APP = "import time\nwhile True:\n    time.sleep(60)\n"


@dataclass(frozen=True)
class RelayPaths:
    relay: tuple[str, int]  # the consumer's proxy for the service (every byte relayed)
    direct: tuple[str, int]  # the echo app itself


def _apply(fleet: Fleet, root: Path, docs: list[dict[str, Any]]) -> None:
    path = root / "manifests.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    fleet.cli("apply", "-f", str(path))


def _app(name: str, node: str, digest: str, argv: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeNames": [node],
            "artifacts": [{"name": "app.py", "digest": digest}],
            "lifecycle": {"run": [sys.executable, "app.py", *argv]},
            **spec,
        },
    }


def _consumer_view(fleet: Fleet) -> dict[str, Any] | None:
    mesh = fleet.agent_status("consumer").get("mesh")
    for service in (mesh or {}).get("services", []) if isinstance(mesh, dict) else []:
        port = service["ports"][0]
        endpoints = port["endpoints"]
        if endpoints and endpoints[0]["healthy"] and endpoints[0]["path"] == "relay":
            return {"listen": port["listen"], "target": endpoints[0]["target"]}
    return None


@contextlib.contextmanager
def relay_fleet() -> Iterator[RelayPaths]:
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-mesh-") as tmp:
        root = Path(tmp)
        fleet = Fleet(root / "fleet")
        try:
            fleet.start_cloud()
            for node in ("consumer", "target"):
                fleet.join(node)
            fleet.start_agent("consumer")
            fleet.start_agent("target", env={"EDGEWEAVE_MESH__ADVERTISE_ADDRESS": "127.0.0.2"})
            (root / "echo.py").write_text(ECHO_APP)
            (root / "idle.py").write_text(IDLE_APP)
            echo = fleet.cli("artifact", "push", str(root / "echo.py")).strip()
            idle = fleet.cli("artifact", "push", str(root / "idle.py")).strip()
            echo_port = free_port()
            service = {
                "apiVersion": "edgeweave.io/v1",
                "kind": "Service",
                "metadata": {"name": "echo", "namespace": "default"},
                "spec": {
                    "selector": {"app": "echo"},
                    "ports": [{"name": "tcp", "port": SERVICE_PORT, "targetPort": "tcp"}],
                },
            }
            echo_app = _app(
                "echo",
                "target",
                echo,
                [str(echo_port)],
                ports=[{"name": "tcp", "port": echo_port}],
                healthCheck={"tcp": {"port": "tcp"}, "periodSeconds": 1},
            )
            _apply(fleet, root, [service, echo_app, _app("idle", "consumer", idle, [])])
            wait_until(
                lambda: _consumer_view(fleet) is not None,
                READY_TIMEOUT_S,
                "the consumer's proxy to reach the echo app through the relay",
            )
            view = _consumer_view(fleet)
            assert view is not None
            host, port = view["listen"].rsplit(":", 1)
            yield RelayPaths((host, int(port)), ("127.0.0.1", echo_port))
        finally:
            fleet.stop()
