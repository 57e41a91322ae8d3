"""Offline restart: how fast a node's apps run again after a machine restart with no cloud.

A real cloud and one real agent (:class:`edgeweave.cli.fleet.Fleet`); N apps deployed and
running; then the cloud is killed (SIGKILL), and the "machine restarts": the agent and every
app process are killed, and the agent is started again. Measured: from the new agent's start
to all N apps Running again, read from the agent's own status file (the cloud is still down,
so everything comes from the local store). Baseline in the same run: the same agent start with
no apps to bring back (start to its first status write), as a ratio. Target: ≤ 2 s.

Prints one JSON document on stdout, progress on stderr. The fleet is always stopped.

    .venv/bin/python bench/restart.py [--apps 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeweave.cli.fleet import Fleet, wait_until

TARGET_S = 2.0
APP_SCRIPT = "import time\nwhile True:\n    time.sleep(1)\n"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def running(fleet: Fleet, node: str, agent_pid: int, apps: int) -> bool:
    status = fleet.agent_status(node)
    rows = status.get("apps") or []
    return (
        status.get("agent_pid") == agent_pid
        and len(rows) == apps  # type: ignore[arg-type]
        and all(r.get("phase") == "Running" for r in rows)  # type: ignore[union-attr]
    )


def restart_machine(fleet: Fleet, node: str, apps: int) -> float:
    """Kill the agent and its apps, start the agent; seconds until every app runs."""
    pids = fleet.app_pids(node)
    fleet.agents[node].kill9()
    for pid in pids.values():
        os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not fleet.app_pids(node), 10, "the apps gone")
    started = time.monotonic()
    agent = fleet.start_agent(node)
    wait_until(lambda: running(fleet, node, agent.pid, apps), 30, "every app running again")
    return time.monotonic() - started


def first_status(fleet: Fleet, node: str) -> float:
    """The floor: an agent start with nothing to bring back, until its first status write."""
    fleet.agents[node].kill9()
    started = time.monotonic()
    agent = fleet.start_agent(node)
    wait_until(lambda: fleet.agent_status(node).get("agent_pid") == agent.pid, 30, "status")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-restart-") as tmp:
        root = Path(tmp)
        fleet = Fleet(root / "fleet")
        try:
            fleet.start_cloud()
            fleet.join("bare", {})
            fleet.join("edge-1", {})
            fleet.start_agent("bare")
            fleet.start_agent("edge-1")
            script = root / "app.py"
            script.write_text(APP_SCRIPT)
            digest = fleet.cli("artifact", "push", str(script)).strip()
            items = [
                {
                    "apiVersion": "edgeweave.io/v1",
                    "kind": "App",
                    "metadata": {"name": f"app-{i}", "namespace": "default"},
                    "spec": {
                        "nodeNames": ["edge-1"],
                        "artifacts": [{"name": "app.py", "digest": digest}],
                        "lifecycle": {"run": [sys.executable, "app.py"]},
                    },
                }
                for i in range(args.apps)
            ]
            (root / "apps.json").write_text(json.dumps({"kind": "List", "items": items}))
            fleet.cli("apply", "-f", str(root / "apps.json"))
            wait_until(lambda: len(fleet.app_pids("edge-1")) == args.apps, 60, "apps running")
            assert fleet.cloud is not None
            fleet.cloud.kill9()
            log("cloud killed; restarting the 'machine' while it is down")
            rounds = [restart_machine(fleet, "edge-1", args.apps) for _ in range(args.rounds)]
            floor = [first_status(fleet, "bare") for _ in range(args.rounds)]
        finally:
            fleet.stop()
    median = statistics.median(rounds)
    floor_median = statistics.median(floor)
    report: dict[str, Any] = {
        "benchmark": "restart",
        "command": " ".join(["bench/restart.py", *sys.argv[1:]]),
        "apps": args.apps,
        "rounds": args.rounds,
        "apps_running_again_s": {
            "median": round(median, 3),
            "max": round(max(rounds), 3),
            "all": [round(r, 3) for r in rounds],
        },
        "baseline_agent_start_to_first_status_s": {"median": round(floor_median, 3)},
        "ratio_to_baseline": round(median / floor_median, 2) if floor_median else None,
        "target_s": TARGET_S,
        "met": max(rounds) <= TARGET_S,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
