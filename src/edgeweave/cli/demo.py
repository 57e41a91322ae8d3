"""`edgeweave demo`: a cloud and three edge agents as separate processes, with a sample app.

Runs the real commands a user would (via :mod:`edgeweave.cli.fleet`): `cloud serve` (SQLite,
TLS), `token create` + `edge join` + `edge run` for three nodes with their own data dirs (two
labelled ``role=camera``, one ``role=gateway``, all three ``site=plant``) and a fourth,
``worker-1``, that the admin labels ``edgeweave.io/worker=cloud`` (`label node`) so that the
cloud-placed occupancy report runs there, `artifact push` of
the sample apps, `apply -f examples/`, and waits until the app runs on the camera nodes only,
and until the dashboard on the gateway reaches the occupancy API on edge-1 by name, through
the mesh. Then the smart-building devices: thermostats on a simulated Modbus TCP server and
rooms on the virtual mapper, both served by edge-3's mappers; a target set in the cloud drives
the simulated thermostat and its reading follows. Then the data workflows of
examples/pipelines (:func:`run_examples`): the smart-building one (an OpenCV Filter on the
camera nodes, a Merger, an occupancy report in the cloud; :mod:`.demo_building`) and the
industrial one (a model copied to every node, inference there, results merged;
:mod:`.demo_industrial`). It stops after ``--duration`` seconds, or on Ctrl-C, and always
stops every process it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeweave.errors import ConfigError

if TYPE_CHECKING:
    from edgeweave.cli.demo_building import BuildingRun
    from edgeweave.cli.demo_industrial import IndustrialRun
    from edgeweave.cli.fleet import Fleet

NODES = {
    "edge-1": {"role": "camera", "floor": "1", "site": "plant"},
    "edge-2": {"role": "camera", "floor": "2", "site": "plant"},
    "edge-3": {"role": "gateway", "floor": "1", "site": "plant"},
}
# a node that takes the cloud's own pipeline work (the occupancy report): labelled by the admin
# after it joined (a joining node cannot claim edgeweave.io/ labels)
CLOUD_WORKER = "worker-1"
SAMPLE_APP = "occupancy-counter"
READY_TIMEOUT_S = 90.0
MODBUS_PORT = 5020  # what examples/building-devices.yaml names
DEMO_TARGET = "26"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="run a cloud and three agents with a sample app")
    p.add_argument("--data", type=Path, default=None, help="data dir (default: a temporary one)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop by itself after S seconds (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--examples",
        type=Path,
        default=None,
        metavar="DIR",
        help="manifests to apply (default: the examples/ folder of this checkout)",
    )
    p.set_defaults(func=run)


def default_examples_dir() -> Path:
    import edgeweave

    return Path(edgeweave.__file__).resolve().parents[2] / "examples"


def run(args: argparse.Namespace) -> int:
    from edgeweave.cli.fleet import Fleet, wait_until
    from edgeweave.cli.narrate import say, show

    examples = args.examples or default_examples_dir()
    app_file = examples / "apps" / "occupancy_counter.py"
    if not examples.is_dir() or not app_file.is_file():
        raise ConfigError(f"no examples folder with apps/occupancy_counter.py at {examples}")
    check_examples(examples / "pipelines")
    with contextlib.ExitStack() as stack:
        if args.data is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeweave-demo-")))
        else:
            root = args.data
        fleet = Fleet(root)
        stack.callback(fleet.stop)
        say(f"starting the cloud (data in {fleet.cloud_dir}, logs in {root / 'logs'})")
        fleet.start_cloud()
        for name, labels in NODES.items():
            say(f"joining {name} with labels {labels} and starting its agent")
            fleet.join(name, labels)
            fleet.start_agent(name)
        say(f"joining {CLOUD_WORKER}, a cloud worker: the cloud's own pipelines run there")
        fleet.join(CLOUD_WORKER)
        fleet.start_agent(CLOUD_WORKER)
        show(fleet, "labelling it", "label", "node", CLOUD_WORKER, "edgeweave.io/worker=cloud")
        show(fleet, "pushing the sample app", "artifact", "push", str(app_file))
        # the mesh: an API on edge-1 that the gateway's dashboard calls by name
        api_file = examples / "apps" / "occupancy_api.py"
        show(fleet, "pushing the occupancy API and dashboard", "artifact", "push", str(api_file))
        show(fleet, f"applying the manifests in {examples}", "apply", "-f", str(examples))
        say(f"waiting for {SAMPLE_APP} to run on the camera nodes")
        wait_until(
            lambda: _running_on(fleet) >= {"edge-1", "edge-2"},
            READY_TIMEOUT_S,
            f"{SAMPLE_APP} running on edge-1 and edge-2",
        )
        show(fleet, "nodes", "get", "nodes", "-o", "wide")
        show(fleet, "apps: running on the role=camera subset only", "get", "apps", "-o", "wide")
        show(
            fleet,
            "devices (KubeEdge v1beta1 manifests, applied unchanged)",
            "get",
            "devices",
            "-o",
            "wide",
        )
        _show_mesh(fleet)
        _building_devices(fleet, root, stack)
        say("edge-1's own view, read locally (works with the cloud down too)")
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgeweave",
                "edge",
                "status",
                "--data",
                str(fleet.agent_dir("edge-1")),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        print(status.stdout, end="", flush=True)
        run_examples(fleet, examples / "pipelines", root / "work")
        show(
            fleet,
            f"the cloud-placed report ran on {CLOUD_WORKER}",
            "job",
            "list",
            "-p",
            "occupancy",
        )
        print(
            "\n==> the fleet is running. In another terminal:\n"
            f"    export EDGEWEAVE_CONFIG={fleet.admin_config}\n"
            "    .venv/bin/edgeweave get nodes -o wide\n"
            f"    .venv/bin/edgeweave describe app {SAMPLE_APP}\n"
            f"    .venv/bin/edgeweave edge status --data {fleet.agent_dir('edge-1')}\n",
            flush=True,
        )
        _wait(args.duration)
        say("stopping the agents, their apps and the cloud")
    return 0


def _reported(fleet: Any, device: str, prop: str) -> str | None:
    try:
        doc = json.loads(fleet.cli("twin", "get", device, "-o", "json"))
    except (ValueError, Exception):  # not reported yet, or the cloud is still busy
        return None
    for p in doc.get("properties") or []:
        if p.get("name") == prop:
            value = p.get("reported")
            return str(value) if value is not None else None
    return None


def _building_devices(fleet: Any, root: Path, stack: contextlib.ExitStack) -> None:
    """Thermostats on a simulated Modbus TCP server, rooms on the virtual mapper, all on
    edge-3: a target set in the cloud drives the simulated device and the reading follows."""
    from edgeweave.cli.fleet import Proc, wait_until
    from edgeweave.cli.narrate import say, show

    say(f"starting the Modbus thermostat simulator on 127.0.0.1:{MODBUS_PORT}")
    argv = [sys.executable, "-m", "edgeweave", "mapper", "simulate", "modbus"]
    argv += ["--port", str(MODBUS_PORT), "--units", "1,2", "--speed", "60"]
    sim = Proc("modbus-sim", argv, root / "logs" / "modbus-sim.log", fleet.env)
    sim.start()
    stack.callback(sim.stop)
    say("waiting for edge-3's mappers to report the thermostats and rooms")
    wait_until(
        lambda: (
            _reported(fleet, "thermostat-1", "temperature") is not None
            and _reported(fleet, "occupancy-1", "co2") is not None
        ),
        READY_TIMEOUT_S,
        "the first readings",
    )
    show(fleet, "devices: desired vs reported", "get", "devices", "-o", "wide")
    before = _reported(fleet, "thermostat-1", "temperature")
    show(fleet, "raise thermostat-1's target", "twin", "set", "thermostat-1",
          f"target-temperature={DEMO_TARGET}")  # fmt: skip
    wait_until(
        lambda: _reported(fleet, "thermostat-1", "target-temperature") in (DEMO_TARGET, "26.0"),
        READY_TIMEOUT_S,
        "the simulated thermostat to take the new target",
    )
    wait_until(
        lambda: (_reported(fleet, "thermostat-1", "temperature") or "") != before,
        READY_TIMEOUT_S,
        "the room temperature to move",
    )
    show(fleet, "thermostat-1 after the change (read back over Modbus)", "twin", "get",
          "thermostat-1")  # fmt: skip
    show(fleet, "its temperature history", "twin", "history", "thermostat-1", "temperature",
          "--limit", "5")  # fmt: skip


def _show_mesh(fleet: Any) -> None:
    """The dashboard on edge-3 reaching occupancy.default (the API on edge-1) by name."""
    from edgeweave.cli.narrate import say, show

    say("waiting for the dashboard on edge-3 to reach occupancy.default (on edge-1) by name")
    log = fleet.agent_dir("edge-3") / "apps" / "default" / "occupancy-dashboard" / "logs"
    from edgeweave.cli.fleet import wait_until

    wait_until(
        lambda: "answered" in _read(log / "app.log"), READY_TIMEOUT_S, "the dashboard's answer"
    )
    show(
        fleet,
        "the service's endpoints, and the path edge-3 takes",
        "get",
        "endpoints",
        "-o",
        "wide",
    )
    show(
        fleet,
        "the dashboard's log",
        "logs",
        "occupancy-dashboard",
        "--node",
        "edge-3",
        "--tail",
        "3",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _running_on(fleet: Any) -> set[str]:
    try:
        app = json.loads(fleet.cli("get", "app", SAMPLE_APP, "-o", "json"))
    except (ValueError, Exception):  # not created yet, or the cloud is still busy
        return set()
    nodes = (app.get("status") or {}).get("nodes") or {}
    return {n for n, s in nodes.items() if (s or {}).get("phase") == "Running"}


@dataclass(frozen=True)
class ExamplesRun:
    building: BuildingRun
    industrial: IndustrialRun


def check_examples(pipelines: Path) -> None:
    """ConfigError unless the examples and the libraries their code imports are here."""
    import importlib.util

    for example in ("smart-building", "industrial"):
        if not (pipelines / example / "pipelines.yaml").is_file():
            raise ConfigError(f"no {example}/pipelines.yaml in {pipelines}")
    # the examples' code imports these; the agents run it with this interpreter (Fleet's PATH)
    missing = [m for m in ("numpy", "cv2") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"the demo's pipelines need {' and '.join(missing)} beside {sys.executable}: "
            "pip install 'edgeweave[vision]' (make install does)"
        )


def run_examples(
    fleet: Fleet,
    pipelines: Path,
    work: Path,
    cameras: Mapping[str, str] | None = None,
    machines: Mapping[str, list[str]] | None = None,
) -> ExamplesRun:
    """The data workflows of ``pipelines`` (examples/pipelines) on the fleet's nodes: camera
    node → camera, plant node → its machines (default: the demo's three nodes)."""
    from edgeweave.cli.demo_building import CAMERAS, run_building
    from edgeweave.cli.demo_industrial import MACHINES, run_industrial

    check_examples(pipelines)
    building = run_building(
        fleet, pipelines / "smart-building", work / "frames", cameras or CAMERAS
    )
    industrial = run_industrial(
        fleet, pipelines / "industrial", work / "readings", machines or MACHINES
    )
    return ExamplesRun(building, industrial)


def _wait(duration: float | None) -> None:
    done = threading.Event()
    try:
        started = time.monotonic()
        done.wait(duration)  # None: until Ctrl-C
        del started
    except KeyboardInterrupt:
        print()
