"""Idle memory of the edge agent with 5 apps running (target: ``rss_mb`` ≤ 35).

Starts a real cloud and one real agent (``edgeweave edge run``) through
:class:`edgeweave.cli.fleet.Fleet`, deploys 5 Apps (a sleeping Python script) to the node,
waits until all run and the agent has been idle for a while, then reads the agent's
``VmRSS``/``RssAnon``/``RssFile``/``VmHWM`` (``/proc/PID/status``) and ``Pss``
(``/proc/PID/smaps_rollup``). Baselines measured in the same run: a bare asyncio Python
process (``ratio_to_bare_asyncio``) and the import-only RSS of ``edgeweave.edge.agent``.

Then a Device is assigned to the node, which starts the agent's device side (twin host and
embedded MQTT broker; a node without devices loads neither), and the RSS is read again
(``with_device_bus_rss_mb``, no target: reported beside the idle figure).

Prints one JSON document on stdout, progress on stderr. The fleet is always stopped.

    .venv/bin/python bench/agent_rss.py [--apps 5] [--idle-s 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeweave.cli.fleet import Fleet, wait_until

TARGET_RSS_MB = 35.0
NODE = "rss-node"
APP_SCRIPT = "import time\nwhile True:\n    time.sleep(1)\n"
BARE = "import asyncio; asyncio.run(asyncio.sleep(30))"
HEAVY_MODULES = ("pydantic", "httpx", "cryptography", "yaml")  # none belongs on the idle path
IMPORT_ONLY = (
    "import sys, edgeweave.edge.agent; "
    "print(open('/proc/self/status').read()); "
    f"print('LOADED', *[m in sys.modules for m in {HEAVY_MODULES!r}])"
)
KB_PER_MB = 1024.0
# a device with no built-in mapper: the measurement is the agent's own device side
DEVICE_DOCS = [
    {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "rss-model", "namespace": "default"},
        "spec": {"properties": [{"name": "t", "type": "FLOAT", "accessMode": "ReadOnly"}]},
    },
    {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "rss-device", "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "rss-model"},
            "nodeName": NODE,
            "protocol": {"protocolName": "custom"},
            "properties": [{"name": "t"}],
        },
    },
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _kb_fields(text: str, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in names:
            out[key] = round(int(rest.split()[0]) / KB_PER_MB, 2)
    return out


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, VmHWM and Pss of a live process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        status = _kb_fields(f.read(), ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"))
    with open(f"/proc/{pid}/smaps_rollup") as f:
        rollup = _kb_fields(f.read(), ("Pss",))
    return {
        "rss_mb": status["VmRSS"],
        "rss_anon_mb": status["RssAnon"],
        "rss_file_mb": status["RssFile"],
        "rss_shmem_mb": status.get("RssShmem", 0.0),
        "hwm_mb": status["VmHWM"],
        "pss_mb": rollup["Pss"],
    }


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def bare_asyncio_rss_mb() -> float:
    proc = subprocess.Popen([sys.executable, "-c", BARE])
    try:
        time.sleep(1.5)
        return memory_of(proc.pid)["rss_mb"]
    finally:
        proc.kill()
        proc.wait()


def import_only() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True, check=True
    ).stdout
    fields = _kb_fields(out, ("VmRSS",))
    flags = out.split("LOADED", 1)[1].split()
    loaded = {
        f"imports_{name}": flag == "True" for name, flag in zip(HEAVY_MODULES, flags, strict=True)
    }
    return {"import_rss_mb": fields["VmRSS"], **loaded}


def app_manifest(i: int, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": f"idle-{i}", "namespace": "default"},
        "spec": {
            "nodeNames": [NODE],
            "artifacts": [{"name": "app.py", "digest": digest}],
            "lifecycle": {"run": [sys.executable, "app.py"]},
        },
    }


def measure_agent(root: Path, apps: int, idle_s: float) -> dict[str, Any]:
    fleet = Fleet(root / "fleet")
    try:
        log("starting the cloud")
        fleet.start_cloud()
        fleet.join(NODE)
        agent = fleet.start_agent(NODE)
        script = root / "app.py"
        script.write_text(APP_SCRIPT)
        digest = fleet.cli("artifact", "push", str(script)).strip()
        manifest = root / "apps.json"
        docs = [app_manifest(i, digest) for i in range(apps)]
        manifest.write_text(json.dumps(docs))  # a JSON list: one document per App
        fleet.cli("apply", "-f", str(manifest))
        log(f"waiting for {apps} apps on {NODE}")
        wait_until(lambda: len(fleet.app_pids(NODE)) >= apps, 60, f"{apps} apps running")
        started = time.monotonic()
        wait_until(lambda: _all_running(fleet, apps), 60, "every app Running in status.json")
        log(f"all {apps} running after {time.monotonic() - started:.1f} s; idling {idle_s:g} s")
        time.sleep(idle_s)
        if not agent.alive():
            raise RuntimeError(f"the agent exited; its log:\n{agent.log_tail()}")
        result: dict[str, Any] = memory_of(agent.pid)
        result["threads"] = threads_of(agent.pid)
        result["apps_running"] = len(fleet.app_pids(NODE))
        log("adding a Device: the device side starts (twin host, embedded MQTT broker)")
        devices = root / "devices.json"
        devices.write_text(json.dumps(DEVICE_DOCS))
        fleet.cli("apply", "-f", str(devices))
        wait_until(lambda: "bus" in fleet.agent_status(NODE), 60, "the agent's device bus")
        time.sleep(idle_s)
        with_devices = memory_of(agent.pid)
        result["with_device_bus_rss_mb"] = with_devices["rss_mb"]
        result["with_device_bus_pss_mb"] = with_devices["pss_mb"]
        return result
    finally:
        fleet.stop()


def _all_running(fleet: Fleet, apps: int) -> bool:
    rows = fleet.agent_status(NODE).get("apps", [])
    assert isinstance(rows, list)
    return sum(1 for r in rows if r.get("phase") == "Running") >= apps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    bare = bare_asyncio_rss_mb()
    imports = import_only()
    with tempfile.TemporaryDirectory(prefix="edgeweave-rss-") as tmp:
        agent = measure_agent(Path(tmp), args.apps, args.idle_s)
    doc = {
        "benchmark": "agent_rss",
        "command": "python bench/agent_rss.py",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "apps": args.apps,
        "idle_s": args.idle_s,
        **agent,
        **imports,
        "bare_asyncio_rss_mb": bare,
        "ratio_to_bare_asyncio": round(agent["rss_mb"] / bare, 2) if bare else None,
        "target_rss_mb": TARGET_RSS_MB,
        "meets_target": agent["rss_mb"] <= TARGET_RSS_MB,
    }
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
