"""The word-count example (examples/pipelines/wordcount/README.md) with the real commands: a
real ``edgeweave cloud serve`` and the ``edgeweave`` CLI as subprocesses, real datum processes.
The map step counts words per document, the reduce step sums them; adding one document reruns
only its datum and the reduce step follows on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeweave.cli.fleet import Fleet

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parents[2] / "examples" / "pipelines" / "wordcount"


def newest_job(fleet: Fleet, pipeline: str) -> dict[str, object]:
    jobs = json.loads(fleet.cli("job", "list", "-p", pipeline, "-o", "json"))["items"]
    return dict(jobs[0])


def test_wordcount_example_runs_incrementally_with_the_cli(fleet: Fleet) -> None:
    ex = str(EXAMPLE)
    assert fleet.cli("repo", "create", "docs").strip() == "repo/docs created"
    fleet.cli("repo", "create", "code")
    fleet.cli("file", "put", "code@master:/", "-f", f"{ex}/wordcount.py")
    put = fleet.cli(
        "file", "put", "docs@master:/", "-f", f"{ex}/docs/a.txt", "-f", f"{ex}/docs/b.txt"
    )
    assert put.startswith("2 files put in docs@master commit ")
    assert fleet.cli("pipeline", "create", "-f", f"{ex}/wordcount.json").strip() == (
        "pipeline/wordcount created"
    )
    fleet.cli("pipeline", "create", "-f", f"{ex}/totals.yaml")
    fleet.cli("pipeline", "wait")

    jobs = fleet.cli("job", "list")
    assert "2 + 0 / 2" in jobs and "1 + 0 / 1" in jobs and "failure" not in jobs
    assert fleet.cli("file", "get", "wordcount@master:/a.txt").splitlines()[:2] == [
        "the 3",
        "mat 2",
    ]
    totals = fleet.cli("file", "get", "totals@master:/totals.txt").splitlines()
    assert totals[:3] == ["the 4", "a 2", "cat 2"]
    listed = fleet.cli("file", "list", "wordcount@master:/")
    assert "/a.txt" in listed and "/b.txt" in listed

    fleet.cli("file", "put", "docs@master:/c.txt", "-f", f"{ex}/docs/c.txt")
    fleet.cli("pipeline", "wait", "totals")
    job = newest_job(fleet, "wordcount")
    assert job["datums"] == {"total": 3, "processed": 1, "skipped": 2, "failed": 0, "recovered": 0}
    assert "1 + 2 / 3" in fleet.cli("job", "list", "-p", "wordcount").splitlines()[1]
    datums = fleet.cli("datum", "list", str(job["id"]))
    assert datums.count("skipped") == 2 and "docs:/c.txt + code:/" in datums
    assert "c.txt: 2 words, 2 distinct" in fleet.cli("logs", "--job", str(job["id"])[:8])
    assert fleet.cli("file", "get", "totals@master:/totals.txt").splitlines()[0] == "the 5"

    lineage = fleet.cli("lineage", "totals@master:/totals.txt")
    assert "wordcount@" in lineage and ":/c.txt  (put by a user)" in lineage
    assert "code@" in lineage and ":/wordcount.py  (put by a user)" in lineage
    inspect = fleet.cli("commit", "inspect", "wordcount@master")
    assert f"Job:         {job['id']}" in inspect
    assert len(fleet.cli("commit", "list", "docs").splitlines()) == 3  # header + 2 commits
    assert len(fleet.cli("file", "glob", "docs@master:/*").splitlines()) == 4  # header + 3
    pipelines = fleet.cli("pipeline", "list")
    assert "(docs:/* x code:/)" in pipelines and "idle" in pipelines
