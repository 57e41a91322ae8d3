"""The service mesh with a cloud and three agents as real processes, driven by the real commands.

An HTTP app runs on edge-a and edge-c behind the Service ``web``; edge-b runs a caller app and
is where the tests reach ``web.default`` from, through edge-b's DNS responder and proxy — as an
app on edge-b would (the caller app does exactly that, by name). One scenario per test:
round robin and failover when an endpoint dies; a node whose advertised address nobody can
reach, bridged by the relay through the cloud, and the cloud going away and coming back.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, DNSRecord
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from edgeweave.cli.fleet import Fleet, free_port, wait_until
from edgeweave.edge.identity import load_identity

pytestmark = pytest.mark.e2e

SERVICE_PORT = 18080
# the web app listens on 127.0.0.1 only, so a node advertising this reaches nobody directly
# (a TEST-NET address would be nicer, but some sandboxes route those to a catch-all proxy)
UNREACHABLE = "127.0.0.2"

WEB_APP = """\
import http.server, os, sys
NODE = os.environ["EDGEWEAVE_NODE"]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{NODE} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

# resolves web.default with the node's mesh DNS (EDGEWEAVE_DNS), then calls it over HTTP
CALLER_APP = """\
import os, socket, struct, time, urllib.request
def resolve(name, server):
    host, port = server.rsplit(":", 1)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    query = struct.pack("!6H", 7, 0x0100, 1, 0, 0, 0) + labels + b"\\0" + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(query, (host, int(port)))
        answer = s.recv(512)
    return socket.inet_ntoa(answer[-4:]) if struct.unpack("!H", answer[6:8])[0] else None
print("env", os.environ.get("EDGEWEAVE_DNS"), os.environ.get("EDGEWEAVE_SERVICE_WEB"), flush=True)
while True:
    try:
        ip = resolve("web.default", os.environ["EDGEWEAVE_DNS"])
        with urllib.request.urlopen(f"http://{ip}:SERVICE_PORT/caller", timeout=5) as r:
            print("got", r.read().decode(), flush=True)
    except Exception as e:
        print("failed", repr(e), flush=True)
    time.sleep(0.5)
""".replace("SERVICE_PORT", str(SERVICE_PORT))


def apply(fleet: Fleet, tmp: Path, *docs: dict[str, Any]) -> None:
    path = tmp / f"m{time.monotonic_ns()}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))
    fleet.cli("apply", "-f", str(path))


def push(fleet: Fleet, tmp: Path, name: str, content: str) -> str:
    path = tmp / name
    path.write_text(content)
    return fleet.cli("artifact", "push", str(path)).strip()


def app(name: str, node: str, digest: str, argv: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": "default", "labels": spec.pop("labels", {})},
        "spec": {
            "nodeNames": [node],
            "artifacts": [{"name": "app.py", "digest": digest}],
            "lifecycle": {"run": [sys.executable, "app.py", *argv]},
            **spec,
        },
    }


def web_app(node: str, digest: str, port: int) -> dict[str, Any]:
    return app(
        f"web-{node[-1]}",
        node,
        digest,
        [str(port)],
        labels={"app": "web"},
        ports=[{"name": "http", "port": port}],
        restartPolicy="Never",
        healthCheck={"http": {"port": "http", "path": "/healthz"}, "periodSeconds": 1},
    )


SERVICE = {
    "apiVersion": "edgeweave.io/v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
    },
}


def deploy(fleet: Fleet, tmp: Path) -> None:
    web = push(fleet, tmp, "web.py", WEB_APP)
    caller = push(fleet, tmp, "caller.py", CALLER_APP)
    apply(
        fleet,
        tmp,
        SERVICE,
        web_app("edge-a", web, free_port()),
        web_app("edge-c", web, free_port()),
        app("caller", "edge-b", caller, []),
    )


def ready_endpoints(fleet: Fleet) -> dict[str, str]:
    """node → address of the ready endpoints of ``web``, as the cloud has them."""
    try:
        obj = json.loads(fleet.cli("get", "endpoints", "web", "-o", "json"))
    except Exception:  # not written yet
        return {}
    return {e["node"]: e["address"] for e in obj.get("endpoints", []) if e.get("ready")}


def mesh_view(fleet: Fleet, node: str) -> dict[str, Any]:
    mesh = fleet.agent_status(node).get("mesh")
    return mesh if isinstance(mesh, dict) else {}


def healthy_on_b(fleet: Fleet) -> set[str]:
    """Nodes of the healthy ``web`` endpoints edge-b's proxy knows."""
    for service in mesh_view(fleet, "edge-b").get("services", []):
        if service["service"] == "default/web":
            return {e["node"] for p in service["ports"] for e in p["endpoints"] if e["healthy"]}
    return set()


def resolve(fleet: Fleet, node: str, name: str) -> str:
    """``name`` through ``node``'s mesh DNS, as an app there would ask it."""
    host, port = mesh_view(fleet, node)["dns"].rsplit(":", 1)
    reply = DNSRecord.parse(DNSRecord.question(name).send(host, int(port), timeout=5))
    answers = [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]
    assert answers, f"{name} did not resolve: {reply}"
    return answers[0]


def call(address: str, path: str = "/") -> str:
    conn = http.client.HTTPConnection(address, SERVICE_PORT, timeout=15)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def spread(address: str, n: int) -> Counter[str]:
    return Counter(call(address).split()[0] for _ in range(n))


def even(counts: Counter[str], *nodes: str) -> bool:
    """Round robin over ``nodes``: each got its share, give or take the connections the
    caller app on edge-b made through the same proxy meanwhile (each takes a turn)."""
    share = sum(counts.values()) / len(nodes)
    return set(counts) == set(nodes) and all(abs(counts[n] - share) <= 2 for n in nodes)


def linked(fleet: Fleet, node: str) -> bool:
    link = fleet.agent_status(node).get("link")
    return isinstance(link, dict) and link.get("state") == "connected"


def caller_log(fleet: Fleet) -> str:
    path = fleet.agent_dir("edge-b") / "apps" / "default" / "caller" / "logs" / "app.log"
    return path.read_text() if path.exists() else ""


def test_service_on_another_node_is_reached_by_name_round_robin_and_around_a_dead_endpoint(
    fleet: Fleet, tmp_path: Path
) -> None:
    for node in ("edge-a", "edge-b", "edge-c"):
        fleet.join(node)
        fleet.start_agent(node)
    deploy(fleet, tmp_path)
    wait_until(lambda: ready_endpoints(fleet).keys() == {"edge-a", "edge-c"}, 60, "2 endpoints")
    wait_until(lambda: healthy_on_b(fleet) == {"edge-a", "edge-c"}, 30, "edge-b's catalog")

    # by name, through edge-b's DNS: both forms give the service's proxy address on edge-b
    address = resolve(fleet, "edge-b", "web.default")
    assert resolve(fleet, "edge-b", "web.default.svc.cluster.local") == address
    assert address.startswith("127.")
    assert call(address, "/hello") in ("edge-a /hello", "edge-c /hello")
    # round robin: every connection to the next endpoint
    counts = spread(address, 20)
    assert even(counts, "edge-a", "edge-c"), counts

    # the caller app on edge-b does the same by itself, with what the agent gave it
    wait_until(lambda: "got edge-" in caller_log(fleet), 30, "the caller app's answers")
    env_line = next(line for line in caller_log(fleet).splitlines() if line.startswith("env"))
    assert env_line.split()[1:] == [mesh_view(fleet, "edge-b")["dns"], f"{address}:{SERVICE_PORT}"]

    # an endpoint dies: the next connections go to the other one, none fails
    os.kill(fleet.app_pids("edge-a")["default/web-a"], signal.SIGKILL)
    # (a connection that races the process's exit is accepted, then dropped: wait for it)
    wait_until(lambda: "default/web-a" not in fleet.app_pids("edge-a"), 10, "web-a gone")
    assert spread(address, 10) == {"edge-c": 10}
    wait_until(lambda: ready_endpoints(fleet).keys() == {"edge-c"}, 30, "the dead one dropped")
    assert spread(address, 4) == {"edge-c": 4}


def test_unreachable_node_is_reached_through_the_relay_and_names_survive_the_cloud(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.join("edge-a")
    fleet.join("edge-b")
    fleet.join("edge-c")
    fleet.join("edge-d")  # never runs an app: it may not reach the service
    fleet.start_agent("edge-a")
    fleet.start_agent("edge-b")
    fleet.start_agent("edge-c", env={"EDGEWEAVE_MESH__ADVERTISE_ADDRESS": UNREACHABLE})
    deploy(fleet, tmp_path)
    wait_until(lambda: ready_endpoints(fleet).keys() == {"edge-a", "edge-c"}, 60, "2 endpoints")
    assert ready_endpoints(fleet)["edge-c"] == UNREACHABLE
    wait_until(lambda: healthy_on_b(fleet) == {"edge-a", "edge-c"}, 30, "edge-b's catalog")
    address = resolve(fleet, "edge-b", "web.default")

    counts = spread(address, 10)
    assert even(counts, "edge-a", "edge-c"), counts  # edge-c only via the relay
    wait_until(
        lambda: mesh_view(fleet, "edge-b").get("paths") == {"edge-a": "direct", "edge-c": "relay"},
        30,
        "edge-b's paths",
    )
    wide = lambda: fleet.cli("get", "endpoints", "web", "-o", "wide")  # noqa: E731
    wait_until(lambda: "edge-b:relay" in wide() and "edge-b:direct" in wide(), 30, "paths shown")
    rows = {line.split()[3]: line for line in wide().splitlines()[1:]}
    assert "edge-b:relay" in rows["edge-c"] and "edge-b:direct" in rows["edge-a"]
    assert relay_refusal(fleet, "edge-d") == 4403

    # the cloud goes away: names still resolve, the direct endpoint carries everything
    assert fleet.cloud is not None
    fleet.cloud.kill9()
    assert resolve(fleet, "edge-b", "web.default") == address
    assert spread(address, 6) == {"edge-a": 6}
    # ... also after edge-b's agent restarts without the cloud (from its local store)
    fleet.agents["edge-b"].stop()
    agent = fleet.start_agent("edge-b")
    wait_until(
        lambda: (
            fleet.agent_status("edge-b").get("agent_pid") == agent.pid
            and healthy_on_b(fleet) == {"edge-a", "edge-c"}
        ),
        30,
        "edge-b's mesh back, from the restarted agent",
    )
    assert resolve(fleet, "edge-b", "web.default") == address
    assert spread(address, 6) == {"edge-a": 6}

    # the cloud is back: so is the relay
    fleet.start_cloud()
    wait_until(lambda: all(linked(fleet, n) for n in ("edge-b", "edge-c")), 60, "links back")
    counts = spread(address, 10)
    assert even(counts, "edge-a", "edge-c"), counts


def relay_refusal(fleet: Fleet, node: str) -> int | None:
    """The close code the hub gives ``node`` asking to relay to web's endpoint on edge-c."""
    identity = load_identity(fleet.agent_dir(node))
    port = json.loads(fleet.cli("get", "endpoints", "web", "-o", "json"))["endpoints"]
    target = next(e for e in port if e["node"] == "edge-c")["ports"][0]["targetPort"]
    query = f"namespace=default&service=web&port={SERVICE_PORT}&node=edge-c&targetPort={target}"
    url = identity.hub_url.replace("/link", "/relay") + "?" + query

    async def dial() -> int | None:
        async with connect(url, ssl=identity.ssl_context()) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    return asyncio.run(dial())
