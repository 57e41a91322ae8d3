"""The data workflows `edgeweave demo` runs (examples/pipelines), end to end with the real
commands: a cloud and two nodes as processes, both camera nodes of the smart building and
plant nodes of the industrial example. The demo's own pipeline part
(:func:`edgeweave.cli.demo.run_examples`) runs once for the module, and each test checks one
outcome of that run against what the examples' generators put in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.cli.demo import ExamplesRun, run_examples
from edgeweave.cli.fleet import Fleet, wait_until

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"
CAMERAS = {"edge-1": "lobby", "edge-2": "office"}
MACHINES = {"edge-1": ["press-1", "press-2"], "edge-2": ["pump-1", "pump-2"]}
KEPT = {  # the frames frames.py draws with people in them
    "edge-1": ["/lobby-0820.png", "/lobby-0900.png", "/lobby-0920.png", "/lobby-1020.png"],
    "edge-2": ["/office-0900.png", "/office-0920.png", "/office-1020.png"],
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, ExamplesRun]]:
    root = tmp_path_factory.mktemp("demo")
    fleet = Fleet(root / "fleet")
    try:
        fleet.start_cloud()
        for node in CAMERAS:
            fleet.join(node, {"role": "camera", "site": "plant"})
            fleet.start_agent(node)
        yield fleet, run_examples(fleet, EXAMPLES, root / "work", CAMERAS, MACHINES)
    finally:
        fleet.stop()


def test_each_nodes_filter_dropped_the_empty_frames_and_only_the_kept_ones_were_merged(
    demo: tuple[Fleet, ExamplesRun],
) -> None:
    run = demo[1].building
    for node, kept in KEPT.items():
        sizes = {f"/{p.name}": p.stat().st_size for p in run.frames[node]}
        assert len(sizes) == 8
        passed = sum(sizes[p] for p in kept)
        assert run.counters[node] == {
            "itemsIn": 8,
            "bytesIn": sum(sizes.values()),
            "itemsPassed": len(kept),
            "bytesPassed": passed,
            "itemsDropped": 8 - len(kept),
            "bytesDropped": sum(sizes.values()) - passed,
        }
        assert run.merged[node] == kept


def test_the_cloud_report_counts_the_merged_frames_per_camera_and_hour(
    demo: tuple[Fleet, ExamplesRun],
) -> None:
    fleet, run = demo
    assert run.building.report == (
        "NODE    CAMERA  HOUR   FRAMES  PEAK  AT\n"
        "edge-1  lobby   08:00  1       1     08:20\n"
        "edge-1  lobby   09:00  2       2     09:00 09:20\n"
        "edge-1  lobby   10:00  1       1     10:20\n"
        "edge-2  office  09:00  2       2     09:00 09:20\n"
        "edge-2  office  10:00  1       2     10:20\n"
    )
    with fleet.client() as client:
        merger = client.get("pipeline", "people-frames")["status"]["merger"]
        [report_job] = client.list_jobs("occupancy", 1)
    assert merger["complete"] is True and sorted(merger["received"]) == ["edge-1", "edge-2"]
    assert report_job["state"] == "success" and report_job["node"] in ("", None)


def test_every_node_got_the_model_and_pushing_it_again_moved_no_bytes(
    demo: tuple[Fleet, ExamplesRun],
) -> None:
    run = demo[1].industrial
    size = (EXAMPLES / "industrial" / "model.json").stat().st_size
    first, again = run.copies
    assert run.heads[0] != run.heads[1]
    for node in MACHINES:
        assert (first[node]["state"], first[node]["commit"]) == ("copied", run.heads[0])
        assert (first[node]["chunksMoved"], first[node]["bytesMoved"]) == (1, size)
        assert (again[node]["commit"], again[node]["chunksTotal"]) == (run.heads[1], 1)
        assert (again[node]["chunksMoved"], again[node]["bytesMoved"]) == (0, 0)


def test_the_merged_inference_results_flag_exactly_the_faulty_minutes(
    demo: tuple[Fleet, ExamplesRun],
) -> None:
    results = demo[1].industrial.results
    flagged = {
        node: {m: [a["time"] for a in r["anomalies"]] for m, r in found.items()}
        for node, found in results.items()
    }
    assert flagged == {
        "edge-1": {"press-1": ["08:17", "08:41"], "press-2": []},
        "edge-2": {"pump-1": ["08:08"], "pump-2": ["08:29", "08:30", "08:52"]},
    }
    assert {r["model"] for found in results.values() for r in found.values()} == {
        "machine-health v1"
    }


def test_each_node_scored_its_machines_in_one_job_that_loaded_the_model_once(
    demo: tuple[Fleet, ExamplesRun],
) -> None:
    fleet = demo[0]
    with fleet.client() as client:
        jobs: list[dict[str, Any]] = client.list_jobs("anomalies", 100)
        for node, machines in MACHINES.items():
            ran = [j for j in jobs if j["node"] == node and j["datums"]["processed"]]
            [job] = ran  # the model arrived after the readings: one job scored them all
            assert job["datums"]["processed"] == len(machines)
            logs = [d["logTail"] for d in client.list_datums(job["id"])]
            assert sum("loaded model machine-health v1" in log for log in logs) == 1


def test_lineage_follows_a_merged_frame_back_to_the_camera_nodes_repo(
    demo: tuple[Fleet, ExamplesRun],
) -> None:
    fleet = demo[0]
    branch = json.loads(fleet.cli("commit", "inspect", "people-frames@edge-1", "-o", "json"))

    def filter_job() -> dict[str, Any] | None:
        with fleet.client() as client:
            jobs: list[dict[str, Any]] = client.list_jobs("people", 100)
        made = [j for j in jobs if j["node"] == "edge-1" and j["outputCommit"] == branch["id"]]
        return made[0] if made else None

    wait_until(lambda: filter_job() is not None, 60.0, "edge-1's Filter job reported")
    job = filter_job()
    assert job is not None
    [frames] = [i["commit"] for i in job["inputs"] if i["repo"] == "frames"]

    root = json.loads(
        fleet.cli("lineage", "people-frames@master:/edge-1/lobby-0820.png", "-o", "json")
    )
    assert (root["repo"], root["mergedFrom"]) == ("people-frames", "edge-1")
    [node_file] = root["inputs"]
    assert (node_file["repo"], node_file["commit"]) == ("people-frames", branch["id"])
    assert (node_file["path"], node_file["digest"]) == ("/lobby-0820.png", root["digest"])
    assert (node_file["pipeline"], node_file["jobNode"]) == ("people", "edge-1")
    assert node_file["job"] == job["id"] and node_file["datum"]
    [camera] = node_file["inputs"]
    assert (camera["repo"], camera["commit"], camera["path"]) == (
        "frames",
        frames,
        "/lobby-0820.png",
    )
    assert (camera["node"], camera["inputs"]) == ("edge-1", [])
    assert "truncated" not in json.dumps(root)

    tree = fleet.cli("lineage", "people-frames@master:/edge-1/lobby-0820.png").splitlines()
    assert tree[0].endswith(":/edge-1/lobby-0820.png  (merged from branch edge-1)")
    assert tree[1].startswith(f"  people-frames@{branch['id'][:12]}:/lobby-0820.png  (pipeline")
    assert f"job {job['id'][:12]} on node edge-1" in tree[1]
    assert tree[2] == f"    frames@{frames[:12]}:/lobby-0820.png  (on node edge-1)"
