"""Cloud workers with the real commands: a cloud and an agent labelled edgeweave.io/worker=cloud.

A cloud-placed pipeline and a downstream one go to the labelled agent: it fetches the input
commit from the cloud, runs the jobs (`job list` names the node), and pushes the outputs into
the cloud's repos, where `file get` reads them and `lineage` traces them back to the input.
With the agent stopped the node goes NotReady (a short grace period here) and the next commit
is processed by the cloud's built-in worker, downstream included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.cli.fleet import Fleet, wait_until

pytestmark = pytest.mark.e2e
WAIT_S = 60.0

UPPER = {
    "pipeline": {"name": "upper"},
    "transform": {"cmd": ["sh", "-c", 'tr a-z A-Z < "$docs" > "$PFS/out/${docs##*/}"']},
    "input": {"pfs": {"repo": "docs", "glob": "/*"}},
}
SIZES = {
    "pipeline": {"name": "sizes"},
    "transform": {"cmd": ["sh", "-c", 'cat "$upper"/* | wc -c | tr -d " " > "$PFS/out/bytes"']},
    "input": {"pfs": {"repo": "upper", "glob": "/"}},
}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A cloud that marks a node NotReady 3 s after its last heartbeat (40 s by default)."""
    env = {
        **os.environ,
        "EDGEWEAVE_HUB__NODE_GRACE_S": "3",
        "EDGEWEAVE_HUB__HEARTBEAT_INTERVAL_S": "0.5",
        "EDGEWEAVE_HUB__LIFECYCLE_SWEEP_S": "0.5",
    }
    f = Fleet(tmp_path / "fleet", env=env)
    try:
        f.start_cloud()
        yield f
    finally:
        f.stop()


def jobs(fleet: Fleet, pipeline: str) -> list[dict[str, Any]]:
    items = json.loads(fleet.cli("job", "list", "-p", pipeline, "-o", "json"))["items"]
    return [j for j in items if isinstance(j, dict)]


def annotations(fleet: Fleet, name: str) -> dict[str, str]:
    obj = json.loads(fleet.cli("get", "pipeline", name, "-o", "json"))
    return dict(obj["metadata"].get("annotations") or {})


def test_a_cloud_pipeline_runs_on_the_labelled_agent_and_falls_back_when_it_stops(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.join("worker-a")
    labeled = fleet.cli("label", "node", "worker-a", "edgeweave.io/worker=cloud", "role-")
    assert labeled.strip() == "node.edgeweave.io/worker-a labeled"
    fleet.start_agent("worker-a")

    def phase() -> str:
        obj = json.loads(fleet.cli("get", "node", "worker-a", "-o", "json"))
        return str((obj.get("status") or {}).get("phase"))

    wait_until(lambda: phase() == "Ready", WAIT_S, "the worker Ready")
    fleet.cli("repo", "create", "docs")
    doc = tmp_path / "a.txt"
    doc.write_text("hello worker\n")
    fleet.cli("file", "put", "docs@master:/a.txt", "-f", str(doc))
    spec = tmp_path / "specs.json"
    spec.write_text(json.dumps(UPPER) + json.dumps(SIZES))
    fleet.cli("pipeline", "create", "-f", str(spec))
    fleet.cli("pipeline", "wait", "sizes")  # until the worker's outputs are in the cloud
    assert fleet.cli("file", "get", "sizes@master:/bytes").strip() == "13"

    def ran_on_worker(pipeline: str) -> bool:
        return any(
            j["node"] == "worker-a" and j["state"] == "success" for j in jobs(fleet, pipeline)
        )

    wait_until(lambda: ran_on_worker("upper") and ran_on_worker("sizes"), WAIT_S, "worker jobs")
    assert annotations(fleet, "upper")["edgeweave.io/cloud-worker"] == "worker-a"
    obj = json.loads(fleet.cli("get", "pipeline", "upper", "-o", "json"))
    assert "worker-a" in obj["status"]["message"]
    assert not [j for j in jobs(fleet, "upper") if not j["node"]]  # the cloud ran none
    assert fleet.cli("file", "get", "upper@master:/a.txt") == "HELLO WORKER\n"
    assert fleet.cli("file", "get", "sizes@master:/bytes").strip() == "13"
    head = json.loads(fleet.cli("commit", "inspect", "upper@master", "-o", "json"))
    [job] = [j for j in jobs(fleet, "upper") if j["node"] == "worker-a"]
    assert head["id"] == job["outputCommit"]  # the worker's commit, with its provenance
    assert any(p.startswith("docs@") for p in head["provenance"])
    lineage = fleet.cli("lineage", "upper@master:/a.txt").splitlines()  # the worker's job
    assert f"job {job['id'][:12]} on node worker-a, datum " in lineage[0]
    assert lineage[1].startswith("  docs@") and lineage[1].endswith(":/a.txt  (put by a user)")

    assert fleet.agents["worker-a"] is not None
    fleet.agents["worker-a"].stop()  # NotReady after the grace period: back to the cloud
    wait_until(
        lambda: "edgeweave.io/cloud-worker" not in annotations(fleet, "upper"),
        WAIT_S,
        "the pipeline handed back to the cloud",
    )
    doc.write_text("bye\n")
    fleet.cli("file", "put", "docs@master:/b.txt", "-f", str(doc))
    fleet.cli("pipeline", "wait")
    assert fleet.cli("file", "get", "upper@master:/b.txt") == "BYE\n"
    assert fleet.cli("file", "get", "upper@master:/a.txt") == "HELLO WORKER\n"
    assert fleet.cli("file", "get", "sizes@master:/bytes").strip() == "17"
    cloud_jobs = [j for j in jobs(fleet, "sizes") if not j["node"]]
    assert cloud_jobs and cloud_jobs[0]["state"] == "success"
