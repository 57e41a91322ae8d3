"""The cloud and two agents as real processes on loopback, driven through the real commands.

One scenario per test (each builds its own fleet): join, deploy, cloud killed with SIGKILL,
an agent restarted while the cloud is down, the cloud back, spec roll-out; a corrupted
artifact; an oversize frame; node B trying to read node A's things.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from edgeweave.cli.fleet import Fleet, wait_until
from edgeweave.edge.identity import load_identity
from edgeweave.protocol import codec
from edgeweave.protocol import messages as m

pytestmark = pytest.mark.e2e

APP_SCRIPT = """\
import os, time
print("started", os.environ.get("EDGEWEAVE_APP"), os.environ.get("GREETING"), flush=True)
while True:
    time.sleep(1)
"""


def app_manifest(
    name: str,
    digest: str,
    selector: dict[str, str],
    greeting: str = "hi",
    secret: str | None = None,
) -> str:
    doc = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeSelector": selector,
            "artifacts": [{"name": "app.py", "digest": digest}],
            "lifecycle": {"run": [sys.executable, "app.py"]},
            "env": {"GREETING": greeting},
        },
    }
    if secret:
        doc["spec"]["secretRefs"] = [{"name": secret}]
    return json.dumps(doc)


def secret_manifest(name: str, value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"token": value},
        }
    )


def apply(fleet: Fleet, tmp: Path, text: str) -> None:
    path = tmp / f"m{time.monotonic_ns()}.json"
    path.write_text(text)
    fleet.cli("apply", "-f", str(path))


def push(fleet: Fleet, tmp: Path, content: str) -> str:
    path = tmp / "app.py"
    path.write_text(content)
    return fleet.cli("artifact", "push", str(path)).strip()


def linked(fleet: Fleet, node: str) -> bool:
    return fleet.agent_status(node).get("link", {}).get("state") == "connected"  # type: ignore[union-attr]


def app_row(fleet: Fleet, node: str, app: str) -> dict[str, str]:
    for row in fleet.agent_status(node).get("apps", []):  # type: ignore[union-attr]
        if row["app"] == app:
            return {"phase": str(row["phase"]), "message": str(row.get("message") or "")}
    return {"phase": "", "message": ""}


def app_phase(fleet: Fleet, node: str, app: str) -> str:
    return app_row(fleet, node, app)["phase"]


def running_under(fleet: Fleet, node: str, agent_pid: int, app: str = "default/counter") -> bool:
    """The app is Running according to the status written by the agent with ``agent_pid``
    (not a stale status file left by the agent before it)."""
    status = fleet.agent_status(node)
    return status.get("agent_pid") == agent_pid and app_phase(fleet, node, app) == "Running"


def test_apps_survive_cloud_loss_agent_restart_and_reconnect(fleet: Fleet, tmp_path: Path) -> None:
    fleet.join("edge-a", {"role": "camera"})
    fleet.join("edge-b", {"role": "gateway"})
    fleet.start_agent("edge-a")
    fleet.start_agent("edge-b")
    digest = push(fleet, tmp_path, APP_SCRIPT)
    apply(fleet, tmp_path, app_manifest("counter", digest, {"role": "camera"}))

    wait_until(lambda: "default/counter" in fleet.app_pids("edge-a"), 30, "the app on edge-a")
    assert fleet.app_pids("edge-b") == {}  # not selected
    wait_until(
        lambda: "Running" in fleet.cli("get", "app", "counter", "-o", "json"),
        30,
        "the app's status in the cloud",
    )
    pids_before = fleet.app_pids("edge-a")

    assert fleet.cloud is not None
    fleet.cloud.kill9()
    wait_until(lambda: not linked(fleet, "edge-a"), 30, "edge-a to notice the cloud is gone")

    # restart the agent with the cloud down: it adopts the app, which kept running
    fleet.agents["edge-a"].kill9()
    agent = fleet.start_agent("edge-a")
    wait_until(lambda: running_under(fleet, "edge-a", agent.pid), 10, "the app adopted")
    assert fleet.app_pids("edge-a") == pids_before

    # a machine restart with the cloud down: agent and apps gone; apps back from the local store
    fleet.agents["edge-a"].kill9()
    for pid in pids_before.values():
        os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not fleet.app_pids("edge-a"), 10, "the app process gone")
    restarted_at = time.monotonic()
    agent = fleet.start_agent("edge-a")
    wait_until(lambda: running_under(fleet, "edge-a", agent.pid), 10, "the app started again")
    back_in_s = time.monotonic() - restarted_at
    assert back_in_s < 5.0, back_in_s  # the target is 2 s; CI machines are slower and shared
    offline = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeweave",
            "edge",
            "status",
            "--data",
            str(fleet.agent_dir("edge-a")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert offline.returncode == 0 and "default/counter" in offline.stdout
    pids_offline = fleet.app_pids("edge-a")

    fleet.start_cloud()
    wait_until(
        lambda: linked(fleet, "edge-a") and linked(fleet, "edge-b"), 60, "both agents reconnected"
    )
    assert fleet.app_pids("edge-a") == pids_offline  # reconnect restarted nothing
    assert pids_offline != pids_before  # (the "machine restart" started a new process)

    # a spec change rolls out: new process
    apply(fleet, tmp_path, app_manifest("counter", digest, {"role": "camera"}, greeting="hello"))
    wait_until(
        lambda: (
            fleet.app_pids("edge-a").get("default/counter")
            not in (None, pids_offline["default/counter"])
        ),
        30,
        "the changed app restarted",
    )
    log = fleet.agent_dir("edge-a") / "apps" / "default" / "counter" / "logs" / "app.log"
    wait_until(lambda: "hello" in log.read_text(), 10, "the new environment in the app's log")
    # and the same log, read from the cloud through the node's link
    assert "started default/counter hello" in fleet.cli("logs", "counter", "--node", "edge-a")


def test_corrupted_artifact_fails_cleanly_and_runs_nothing(fleet: Fleet, tmp_path: Path) -> None:
    fleet.join("edge-a", {"role": "camera"})
    fleet.start_agent("edge-a")
    digest = push(fleet, tmp_path, APP_SCRIPT)
    stored = fleet.cloud_dir / "objects" / "sha256" / digest[7:9] / digest[7:]
    stored.write_text("print('tampered')\n")  # the bytes no longer match the digest
    apply(fleet, tmp_path, app_manifest("counter", digest, {"role": "camera"}))
    wait_until(
        lambda: app_phase(fleet, "edge-a", "default/counter") == "Failed", 30, "the app to fail"
    )
    assert digest in app_row(fleet, "edge-a", "default/counter")["message"]
    assert fleet.app_pids("edge-a") == {}
    assert not (fleet.agent_dir("edge-a") / "apps" / "default" / "counter" / "app.py").exists()


async def _raw_link(fleet: Fleet, node: str) -> websockets.asyncio.client.ClientConnection:
    identity = load_identity(fleet.agent_dir(node))
    return await connect(
        identity.hub_url, ssl=identity.ssl_context(), max_size=None, compression=None
    )


def test_oversize_frame_closes_only_that_link(fleet: Fleet) -> None:
    fleet.join("edge-a", {"role": "camera"})
    fleet.join("edge-b", {"role": "gateway"})
    fleet.start_agent("edge-a")
    wait_until(lambda: linked(fleet, "edge-a"), 30, "edge-a connected")

    async def send_oversize() -> int | None:
        ws = await _raw_link(fleet, "edge-b")
        try:
            await ws.send("x" * (2 << 20))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        finally:
            await ws.close()
        return ws.close_code

    assert asyncio.run(send_oversize()) == 1009
    connects = fleet.agent_status("edge-a")["link"]["connects"]  # type: ignore[index]
    assert linked(fleet, "edge-a")
    fleet.cli("get", "nodes")  # the cloud still serves
    assert fleet.agent_status("edge-a")["link"]["connects"] == connects  # type: ignore[index]


def test_node_b_cannot_read_node_a_secret_or_artifact(fleet: Fleet, tmp_path: Path) -> None:
    fleet.join("edge-a", {"role": "camera"})
    fleet.join("edge-b", {"role": "gateway"})
    fleet.start_agent("edge-a")
    fleet.start_agent("edge-b")
    apply(fleet, tmp_path, secret_manifest("a-secret", "only-for-a"))
    digest = push(fleet, tmp_path, APP_SCRIPT)
    apply(fleet, tmp_path, app_manifest("a-app", digest, {"role": "camera"}, secret="a-secret"))
    secret_file = fleet.agent_dir("edge-a") / "apps" / "default" / "a-app" / "secrets"
    wait_until(lambda: any(secret_file.rglob("token")), 30, "the secret delivered to edge-a")

    # B's own store never received it: nothing on B's disk holds the value
    for path in fleet.agent_dir("edge-b").rglob("*"):
        if path.is_file():
            assert b"only-for-a" not in path.read_bytes(), path

    async def ask_for_a_artifact() -> m.Message:
        ws = await _raw_link(fleet, "edge-b")
        try:
            req = m.ArtifactUrlRequest(digest=digest)
            await ws.send(
                codec.encode(
                    m.Hello(
                        agent_version="test",
                        boot_id="t",
                        held_count=0,
                        held_digest="0" * 64,
                        capacity=m.Capacity(cpu=1, memory_bytes=1),
                    )
                )
            )
            await ws.send(codec.encode(req))
            while True:
                msg = codec.decode(await asyncio.wait_for(ws.recv(), 10), direction="down")
                if msg.parent_id == req.id:
                    return msg
        finally:
            await ws.close()

    answer = asyncio.run(ask_for_a_artifact())
    assert isinstance(answer, m.Error) and answer.reason == "Forbidden"

    # B's certificate is no key to the admin API
    identity = load_identity(fleet.agent_dir("edge-b"))
    with httpx.Client(verify=identity.ssl_context()) as client:
        r = client.get(f"{fleet.api_url}/apis/edgeweave.io/v1/namespaces/default/secrets/a-secret")
    assert r.status_code == 401
