"""Pipelines placed on an edge node, with the real commands: a cloud and an agent as processes.

The pipeline goes to the node its placement selects; with the cloud stopped, a file put on
the node (`edgeweave edge file put`) is processed there by the node's own job; when the cloud
comes back, the job — with the node's name and its datum records — shows in `job list` and
the Pipeline's status carries the node's report. A Filter placed on the same node drops the
frame (no person in it) and its counters reach the cloud with the job. A cron pipeline placed
on the node ticks there, by the node's clock, while the cloud is down.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from edgeweave.cli.fleet import Fleet, FleetError, wait_until

pytestmark = pytest.mark.e2e
WAIT_S = 60.0

SPEC = {
    "pipeline": {"name": "upper"},
    "transform": {
        "cmd": ["sh"],
        "stdin": ['for f in /pfs/images/*; do tr a-z A-Z < "$f" > /pfs/out/"${f##*/}"; done'],
    },
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
    "placement": {"nodeSelector": {"role": "camera"}},
}
FILTER = {  # a Filter on the same input: only frames mentioning a person go on
    "pipeline": {"name": "people"},
    "transform": {"cmd": ["sh", "-c", 'grep -q person "$images"']},
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
    "placement": {"nodeNames": ["node-a"]},
    "pattern": {"filter": {"dropCodes": [1]}},
}

TICKS = {  # a cron input: each tick is a commit to node-a's own ticks_tick repo
    "pipeline": {"name": "ticks"},
    "transform": {"cmd": ["sh", "-c", 'basename "$tick" > "$PFS/out/last"']},
    "input": {"cron": {"name": "tick", "spec": "@every 1s", "overwrite": True}},
    "placement": {"nodeNames": ["node-a"]},
}


@pytest.fixture
def two_nodes(fleet: Fleet) -> Fleet:
    """The fleet with a camera node and a gateway node running."""
    fleet.join("node-a", {"role": "camera"})
    fleet.join("node-b", {"role": "gateway"})
    fast = {"EDGEWEAVE_LINK__BACKOFF_CAP_S": "1"}  # back soon after the cloud restarts
    fleet.start_agent("node-a", env=fast)
    fleet.start_agent("node-b", env=fast)
    return fleet


def edge_pipeline(fleet: Fleet, node: str, name: str = "upper") -> dict[str, Any]:
    pipelines = fleet.agent_status(node).get("pipelines")
    found = pipelines.get(name) if isinstance(pipelines, dict) else None
    return found if isinstance(found, dict) else {}


def jobs(fleet: Fleet) -> list[dict[str, Any]]:
    items = json.loads(fleet.cli("job", "list", "-o", "json"))["items"]
    return [j for j in items if isinstance(j, dict)]


def test_edge_pipeline_runs_while_the_cloud_is_down_and_its_job_shows_up_later(
    two_nodes: Fleet, tmp_path: Path
) -> None:
    fleet = two_nodes
    spec = tmp_path / "upper.json"
    spec.write_text(json.dumps(SPEC) + json.dumps(FILTER) + json.dumps(TICKS))
    fleet.cli("pipeline", "create", "-f", str(spec))
    wait_until(
        lambda: bool(edge_pipeline(fleet, "node-a") and edge_pipeline(fleet, "node-a", "people")),
        WAIT_S,
        "both pipelines on node-a",
    )
    assert fleet.agent_dir("node-a").joinpath("pipelines", "put.json").exists()
    assert fleet.cloud is not None
    fleet.cloud.stop()

    photo = tmp_path / "a.txt"
    photo.write_text("hello edge\n")
    out = fleet.node_cli(
        "edge", "file", "put", "--data", str(fleet.agent_dir("node-a")),
        "images@master:/a.txt", "-f", str(photo),
    )  # fmt: skip
    assert "images@master:/a.txt" in out

    def done() -> bool:
        return all(
            (edge_pipeline(fleet, "node-a", name).get("lastJob") or {}).get("state") == "success"
            for name in ("upper", "people")
        )

    wait_until(done, WAIT_S, "the job on node-a")

    def tick_job() -> str:
        last_tick = edge_pipeline(fleet, "node-a", "ticks").get("lastJob") or {}
        return str(last_tick.get("id") or "") if last_tick.get("state") == "success" else ""

    wait_until(lambda: bool(tick_job()), WAIT_S, "a cron tick's job on node-a, the cloud down")
    first_tick = tick_job()
    wait_until(lambda: tick_job() not in ("", first_tick), WAIT_S, "the next tick's job")
    last = edge_pipeline(fleet, "node-a")["lastJob"]
    assert (last["processed"], last["total"]) == (1, 1)
    status = fleet.node_cli("edge", "status", "--data", str(fleet.agent_dir("node-a")))
    assert "upper" in status and "success" in status
    assert not edge_pipeline(fleet, "node-b")  # not placed there: no pipeline host runs
    assert not fleet.agent_dir("node-b").joinpath("pipelines").exists()

    fleet.start_cloud()
    wait_until(lambda: any(j["id"] == last["id"] for j in jobs(fleet)), WAIT_S, "the edge job")
    [job] = [j for j in jobs(fleet) if j["id"] == last["id"]]
    assert (job["node"], job["state"], job["pipeline"]) == ("node-a", "success", "upper")
    assert job["datums"]["processed"] == 1
    table = fleet.cli("job", "list")
    assert "node-a" in table
    datums = json.loads(fleet.cli("datum", "list", job["id"], "-o", "json"))
    items = datums["items"] if isinstance(datums, dict) else datums
    assert [d["state"] for d in items] == ["success"]
    obj = json.loads(fleet.cli("get", "pipeline", "upper", "-o", "json"))
    assert obj["status"]["nodes"]["node-a"]["lastJob"]["id"] == last["id"]

    def filtered() -> list[dict[str, Any]]:
        return [j for j in jobs(fleet) if j["pipeline"] == "people" and j["node"] == "node-a"]

    wait_until(lambda: bool(filtered()), WAIT_S, "the filter's job")
    counts = filtered()[0]["filter"]
    size = len("hello edge\n")
    assert counts == {
        "itemsIn": 1,
        "bytesIn": size,
        "itemsPassed": 0,
        "bytesPassed": 0,
        "itemsDropped": 1,
        "bytesDropped": size,
    }


COPIER = {  # the cloud's model repo, fanned out to the camera nodes
    "pipeline": {"name": "model-pull"},
    "transform": {"cmd": ["true"]},
    "input": {"pfs": {"repo": "models", "glob": "/"}},
    "placement": {"nodeSelector": {"role": "camera"}},
    "pattern": {"copier": {}},
}


def test_a_copier_sends_a_cloud_commit_to_the_selected_nodes_and_a_repeat_moves_nothing(
    two_nodes: Fleet, tmp_path: Path
) -> None:
    fleet = two_nodes
    model = tmp_path / "model.bin"
    model.write_bytes(random.Random(7).randbytes(1_500_000))
    fleet.cli("repo", "create", "models")
    fleet.cli("file", "put", "models@master:/model.bin", "-f", str(model))
    spec = tmp_path / "copier.json"
    spec.write_text(json.dumps(COPIER))
    fleet.cli("pipeline", "create", "-f", str(spec))

    def copied(commit: str) -> dict[str, Any]:
        status = edge_pipeline(fleet, "node-a", "model-pull")
        return status if status.get("commit") == commit and status["state"] == "copied" else {}

    head = json.loads(fleet.cli("commit", "inspect", "models@master", "-o", "json"))["id"]
    wait_until(lambda: bool(copied(head)), WAIT_S, "the model on node-a")
    status = copied(head)
    assert status["bytesMoved"] == 1_500_000 and status["chunksMoved"] == status["chunksTotal"]
    assert not edge_pipeline(fleet, "node-b", "model-pull")  # a gateway: not selected

    fleet.cli("file", "put", "models@master:/model.bin", "-f", str(model))  # the same again
    again = json.loads(fleet.cli("commit", "inspect", "models@master", "-o", "json"))["id"]
    assert again != head
    wait_until(lambda: bool(copied(again)), WAIT_S, "the second commit on node-a")
    assert (copied(again)["bytesMoved"], copied(again)["chunksMoved"]) == (0, 0)

    def acked() -> bool:
        obj = json.loads(fleet.cli("get", "pipeline", "model-pull", "-o", "json"))
        return bool(
            (obj.get("status") or {}).get("nodes", {}).get("node-a", {}).get("commit") == again
        )

    wait_until(acked, WAIT_S, "node-a's copy acknowledged in the cloud")


MERGER = {  # every node's counts, into one cloud repo, one branch per node
    "pipeline": {"name": "all-counts"},
    "transform": {"cmd": ["true"]},
    "input": {"pfs": {"repo": "counts", "glob": "/"}},
    "placement": {"nodeNames": ["node-a", "node-b"]},
    "pattern": {"merger": {"complete": {"sources": "all"}}},
}


def test_a_merger_gathers_each_nodes_commit_keyed_by_node_until_all_sources_arrived(
    two_nodes: Fleet, tmp_path: Path
) -> None:
    fleet = two_nodes
    spec = tmp_path / "merger.json"
    spec.write_text(json.dumps(MERGER))
    fleet.cli("pipeline", "create", "-f", str(spec))
    for node in ("node-a", "node-b"):
        endpoint = fleet.agent_dir(node) / "pipelines" / "put.json"
        wait_until(endpoint.exists, WAIT_S, f"the pipeline host on {node}")

    def merge_state() -> dict[str, Any]:
        obj = json.loads(fleet.cli("get", "pipeline", "all-counts", "-o", "json"))
        merger = (obj.get("status") or {}).get("merger")
        return merger if isinstance(merger, dict) else {}

    def put(node: str, text: str) -> None:
        counts = tmp_path / f"{node}.json"
        counts.write_text(text)
        data = str(fleet.agent_dir(node))
        fleet.node_cli(
            "edge", "file", "put", "--data", data, "counts@master:/hour.json", "-f", str(counts)
        )

    put("node-a", '{"people": 4}\n')
    wait_until(lambda: "node-a" in merge_state().get("received", {}), WAIT_S, "node-a's counts")
    assert merge_state()["complete"] is False  # node-b has not delivered yet
    assert merge_state()["sources"] == ["node-a", "node-b"]
    put("node-b", '{"people": 7}\n')
    wait_until(lambda: merge_state().get("complete") is True, WAIT_S, "the merge to complete")
    got = fleet.cli("file", "get", "all-counts@node-b:/hour.json")
    assert got == '{"people": 7}\n'
    merged = fleet.cli("file", "get", "all-counts@master:/node-a/hour.json")  # the merged view
    assert merged == '{"people": 4}\n'

    fleet.agents["node-a"].stop()  # a restarted node delivers again: nothing changes
    fleet.start_agent("node-a", env={"EDGEWEAVE_LINK__BACKOFF_CAP_S": "1"})

    def redelivered() -> bool:  # the report made after the restart, not the one before
        status = edge_pipeline(fleet, "node-a", "all-counts")
        return status.get("state") == "merged" and status.get("imported") is False

    wait_until(redelivered, WAIT_S, "node-a's delivery after its restart")
    assert edge_pipeline(fleet, "node-a", "all-counts")["bytesMoved"] == 0
    commits = json.loads(fleet.cli("commit", "list", "all-counts", "-o", "json"))["items"]
    assert sorted(c["branch"] for c in commits) == ["master", "node-a", "node-b"]


def test_a_repo_located_on_a_node_lives_there_and_its_commits_are_listed_in_the_cloud(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.join("node-a", {"role": "camera"})
    fleet.start_agent("node-a")
    out = fleet.cli("repo", "create", "frames", "--node", "node-a")
    assert "on node node-a" in out
    endpoint = fleet.agent_dir("node-a") / "pipelines" / "put.json"
    wait_until(endpoint.exists, WAIT_S, "the pipeline host on node-a")  # started by the Repo
    frame = tmp_path / "f1.txt"
    frame.write_text("frame one\n")
    data = str(fleet.agent_dir("node-a"))
    fleet.node_cli("edge", "file", "put", "--data", data, "frames@master:/f1.txt", "-f", str(frame))
    fleet.node_cli("edge", "file", "put", "--data", data, "frames@master:/f2.txt", "-f", str(frame))

    def commits() -> list[dict[str, Any]]:
        items = json.loads(fleet.cli("commit", "list", "frames", "-o", "json"))["items"]
        return [c for c in items if isinstance(c, dict)]

    wait_until(lambda: len(commits()) == 2, WAIT_S, "node-a's two commits in the cloud")
    newest, oldest = commits()
    assert newest["parent"] == oldest["id"] and "node:node-a" in newest["provenance"]
    listed = json.loads(fleet.cli("file", "list", "frames@master:/", "-o", "json"))
    items = listed["items"] if isinstance(listed, dict) else listed
    assert sorted(f["path"] for f in items) == ["/f1.txt", "/f2.txt"]
    repos = json.loads(fleet.cli("repo", "list", "-o", "json"))["items"]
    assert [r["location"] for r in repos if r["name"] == "frames"] == [{"node": "node-a"}]
    got = fleet.cli("file", "get", "frames@master:/f1.txt", check=False)
    assert got == ""  # the bytes are on the node: refused, naming it
    with pytest.raises(FleetError, match="lives on node node-a"):
        fleet.cli("file", "get", "frames@master:/f1.txt")
    with pytest.raises(FleetError, match="lives on node node-a"):
        fleet.cli("file", "put", "frames@master:/x.txt", "-f", str(frame))
