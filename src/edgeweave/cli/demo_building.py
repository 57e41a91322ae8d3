"""The smart-building data workflow of `edgeweave demo` (examples/pipelines/smart-building).

With the real commands, against a running fleet whose camera nodes (``role=camera``) are
named in ``cameras`` (node → camera): `repo create` of the cloud repo the Merger fills,
`pipeline create -f pipelines.yaml` (the OpenCV Filter
on the camera nodes, the Merger bringing what it kept into the cloud, the occupancy report in
the cloud), the example's ``frames.py`` drawing each camera's frames, and
`edge file put -r` of each camera's frames on its node (one commit per node). Then it waits
until the Filter jobs each node reported cover every frame, the Merger's branch of each node
holds what that node's Filter passed and its merged view (``master``) all of it, and the
report has read the newest merged view; and prints the Filter's counters (what the uplink
saved) and the report. It watches through an HTTP client (:meth:`Fleet.client`), not a
command per look.

It returns what it saw (:class:`BuildingRun`): the end-to-end tests assert on the same run a
user watches. Must not import numpy or OpenCV (user code, run as its own processes).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeweave.cli.fleet import Fleet, FleetError, wait_until
from edgeweave.cli.narrate import say, show, table
from edgeweave.errors import EdgeweaveError

if TYPE_CHECKING:
    from edgeweave.client.http import Client

CAMERAS = {"edge-1": "lobby", "edge-2": "office"}
FILTER, MERGER, REPORT = "people", "people-frames", "occupancy"
COUNTERS = ("itemsIn", "bytesIn", "itemsPassed", "bytesPassed", "itemsDropped", "bytesDropped")
WAIT_S = 90.0
POLL_S = 0.1


@dataclass(frozen=True)
class BuildingRun:
    frames: dict[str, list[Path]]  # node -> the frames put there
    counters: dict[str, dict[str, int]]  # node -> the Filter's counters over all its jobs
    merged: dict[str, list[str]]  # node -> the paths on the Merger's branch of that node
    report: str  # occupancy@master:/occupancy.txt


def succeeded_jobs(client: Client, pipeline: str) -> list[dict[str, Any]]:
    """The pipeline's jobs that succeeded; FleetError as soon as one failed (a node without
    the libraries the code imports, say), rather than waiting out the timeout."""
    jobs = client.list_jobs(pipeline, 1000)
    for job in jobs:
        if job.get("state") == "failure":
            where = job.get("node") or "the cloud"
            raise FleetError(f"a job of {pipeline} failed on {where}: {job.get('error')}")
    return [j for j in jobs if j.get("state") == "success"]


def filter_counters(client: Client, nodes: list[str]) -> dict[str, dict[str, int]]:
    """The Filter's counters per node, summed over the jobs the nodes reported."""
    sums = {node: dict.fromkeys(COUNTERS, 0) for node in nodes}
    for job in succeeded_jobs(client, FILTER):
        counts, node = job.get("filter") or {}, job.get("node")
        if node in sums:
            for key in COUNTERS:
                sums[node][key] += int(counts.get(key, 0))
    return sums


def branch_files(client: Client, repo: str, branch: str) -> list[str]:
    """The paths at the top of ``repo@branch``; none while the branch has no commit."""
    try:
        return sorted(str(f["path"]) for f in client.list_files(repo, branch))
    except EdgeweaveError:
        return []


def put_dirs(fleet: Fleet, repo: str, dirs: Mapping[str, Path]) -> None:
    """`edge file put -r` of each node's directory into ``repo@master:/`` on that node."""
    for node, local in dirs.items():
        argv = ["edge", "file", "put", "--data", str(fleet.agent_dir(node)), f"{repo}@master:/"]
        print(f"$ edgeweave {' '.join(argv)} -r -f {local}", flush=True)
        print(fleet.node_cli(*argv, "-r", "-f", str(local)), end="", flush=True)


def run_script(fleet: Fleet, script: Path, *args: str) -> None:
    """One of an example's own scripts, with the interpreter (and packages) of the fleet."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=fleet.env, check=False)  # fmt: skip
    if done.returncode != 0:
        raise FleetError(f"{script.name} failed: {done.stderr.strip()}")
    print(done.stdout, end="", flush=True)


def create_pipelines(fleet: Fleet, spec: Path, nodes: list[str]) -> None:
    """`pipeline create -f SPEC`, then until each node runs its pipeline host."""
    show(fleet, f"the pipelines of {spec.name}", "pipeline", "create", "-f", str(spec))
    for node in nodes:
        endpoint = fleet.agent_dir(node) / "pipelines" / "put.json"
        wait_until(endpoint.exists, WAIT_S, f"the pipeline host on {node}")


def run_building(
    fleet: Fleet, example: Path, work: Path, cameras: Mapping[str, str] = CAMERAS
) -> BuildingRun:
    nodes = list(cameras)
    say("smart building: an OpenCV Filter on each camera node, a Merger, a report in the cloud")
    show(fleet, "the cloud repo the Merger fills (the report reads it)", "repo", "create", MERGER)
    create_pipelines(fleet, example / "pipelines.yaml", nodes)
    say("drawing each camera's frames (a static room, noise, people walking through)")
    run_script(fleet, example / "frames.py", str(work), *cameras.values())
    frames = {node: sorted((work / camera).glob("*.png")) for node, camera in cameras.items()}
    say("each camera's frames go into its own node's `frames` repo (works offline too)")
    put_dirs(fleet, "frames", {node: work / camera for node, camera in cameras.items()})

    say("waiting for every frame to be filtered and what passed to be merged in the cloud")
    counters: dict[str, dict[str, int]] = {}
    merged: dict[str, list[str]] = {}
    with fleet.client() as client:

        def filtered() -> bool:
            counters.update(filter_counters(client, nodes))
            return all(counters[n]["itemsIn"] == len(frames[n]) for n in nodes)

        def delivered() -> bool:  # each node's branch, and the merged view on master
            succeeded_jobs(client, REPORT)
            merged.update({n: branch_files(client, MERGER, n) for n in nodes})
            if not all(len(merged[n]) == counters[n]["itemsPassed"] for n in nodes):
                return False
            try:
                view = client.glob_files(MERGER, "master", "/*/*")
            except EdgeweaveError:  # not complete yet: no merged view
                return False
            return len(view) == sum(counters[n]["itemsPassed"] for n in nodes)

        wait_until(filtered, WAIT_S, "the Filter jobs of every frame", POLL_S)
        wait_until(delivered, WAIT_S, "the kept frames in the cloud", POLL_S)
        if not client.wait_pipelines([REPORT], timeout_s=WAIT_S):
            raise FleetError(f"timed out after {WAIT_S:.0f} s waiting for the {REPORT} report")
    _print_counters(counters)
    report = show(fleet, "the occupancy report, made in the cloud from the merged frames",
                  "file", "get", f"{REPORT}@master:/occupancy.txt")  # fmt: skip
    return BuildingRun(frames, counters, merged, report)


def _print_counters(counters: Mapping[str, Mapping[str, int]]) -> None:
    from edgeweave.cli.pfs import format_bytes

    say("the Filter's counters (reported with each node's jobs): what the uplink saved")
    rows = [["NODE", "FRAMES", "IN", "PASSED", "DROPPED", "UPLINK SAVED"]]
    for node, c in counters.items():
        saved = c["bytesDropped"] / c["bytesIn"] if c["bytesIn"] else 0.0
        rows.append([
            node,
            str(c["itemsIn"]),
            format_bytes(c["bytesIn"]),
            f"{c['itemsPassed']} ({format_bytes(c['bytesPassed'])})",
            f"{c['itemsDropped']} ({format_bytes(c['bytesDropped'])})",
            f"{saved:.0%}",
        ])  # fmt: skip
    total = {k: sum(c[k] for c in counters.values()) for k in ("bytesIn", "bytesDropped")}
    table(rows)
    if total["bytesIn"]:
        say(
            f"the Filter saved {format_bytes(total['bytesDropped'])} of "
            f"{format_bytes(total['bytesIn'])} on the uplink "
            f"({total['bytesDropped'] / total['bytesIn']:.0%})"
        )
