"""Batched datums (``datum_batching: true``) on real repos and real processes: one process
serves many datums under the /pfs contract; failures, retries, crashes, timeouts, err_cmd."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.pipelines import batchjob
from edgeweave.pipelines.jobs import DatumSummary, JobResult, JobRunner
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.spec import PipelineDoc, parse_pipeline_specs

# The user's code: loads once, then answers one status line per datum. A datum holding
# "fail" is answered `fail`; "crash" exits the process the first time (a marker file is
# left); "hang" never answers; "loud" writes to stderr and stdout before answering.
CODE = r"""
import json, os, sys
started = os.getpid()
for line in sys.stdin:
    d = json.loads(line)
    data = open(d["images"]).read()
    name = os.path.basename(d["images"])
    if data == "fail":
        print("fail bad input", flush=True)
        continue
    if data == "crash":
        marker = os.path.join(os.environ["MARKERS"], name)
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(started))  # the process that crashed
            sys.exit(7)
    if data == "hang":
        sys.stdin.read()
    if data == "loud":
        print("to stderr", file=sys.stderr, flush=True)
        print("to stdout", flush=True)
    with open(os.path.join(d["PFS"], "out", name), "w") as f:
        json.dump({"pid": started, "datum": d["PACH_DATUM_ID"], "data": data,
                   "job": os.environ["PACH_JOB_ID"], "env_datum": os.environ.get("PACH_DATUM_ID"),
                   "batching": os.environ["PACH_DATUM_BATCHING"]}, f)
    print("ok", flush=True)
"""


@pytest.fixture
async def repos(tmp_path: Path) -> AsyncIterator[Repos]:
    async with open_repos(tmp_path / "data", fsync=False) as r:
        yield r


def batched(tmp_path: Path, **spec: Any) -> PipelineDoc:
    (tmp_path / "code.py").write_text(CODE)
    (tmp_path / "markers").mkdir(exist_ok=True)
    doc: dict[str, Any] = {
        "pipeline": {"name": "batched"},
        "transform": {
            "cmd": [sys.executable, str(tmp_path / "code.py")],
            "env": {"MARKERS": str(tmp_path / "markers")},
        },
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "datum_batching": True,
    }
    doc.update(spec)
    return parse_pipeline_specs(json.dumps(doc))[0]


async def put(repos: Repos, files: dict[str, bytes]) -> None:
    if "images" not in await repos.list_repos():
        await repos.create_repo("images")
    c = await repos.start_commit("images")
    for path, data in files.items():
        await repos.put_file(c.id, path, data)
    await repos.finish_commit(c.id)


async def outputs(repos: Repos, commit: str | None) -> dict[str, dict[str, Any]]:
    assert commit is not None
    tree = await repos.tree(commit)
    return {p: json.loads(await repos.get_file(commit, p)) for p in tree.paths}


async def test_one_process_serves_every_datum_under_the_pfs_contract(
    repos: Repos, tmp_path: Path
) -> None:
    await put(repos, {f"/{i}.txt": f"d{i}".encode() for i in range(5)} | {"/loud.txt": b"loud"})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    job = await jobs.run_job(batched(tmp_path))
    assert (job.state, job.processed, job.total) == ("success", 6, 6)
    out = await outputs(repos, job.output_commit)
    assert sorted(out) == [*(f"/{i}.txt" for i in range(5)), "/loud.txt"]
    assert len({o["pid"] for o in out.values()}) == 1  # loaded once
    by_name = {d.name: d for d in job.datums}
    for path, o in out.items():
        assert o["job"] == job.id and o["batching"] == "1" and o["env_datum"] is None
        assert o["data"] == ("loud" if path == "/loud.txt" else f"d{path[1]}")
    assert {o["datum"] for o in out.values()} == set(job.history.datums)  # PACH_DATUM_ID
    loud = by_name["images:/loud.txt"]
    log = Path(loud.log_path).read_text()
    assert "to stderr" in log and "to stdout" in log
    quiet = [d for d in job.datums if d is not loud]
    # a log is made on the first line: only the datum the process started with has one
    [logged] = [d for d in quiet if d.log_path]
    assert Path(logged.log_path).read_text().startswith("[edgeweave] start")


async def test_a_failing_datum_is_retried_and_fails_the_job_alone(
    repos: Repos, tmp_path: Path
) -> None:
    await put(repos, {"/a.txt": b"a", "/bad.txt": b"fail", "/c.txt": b"c"})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    job = await jobs.run_job(batched(tmp_path, datum_tries=2))
    assert (job.state, job.processed, job.failed) == ("failure", 2, 1)
    bad = {d.name: d for d in job.datums}["images:/bad.txt"]
    assert (bad.state, bad.attempts) == (DatumState.FAILED, 2)
    assert "the code answered: bad input" in bad.error


async def test_err_cmd_recovers_a_failed_batched_datum(repos: Repos, tmp_path: Path) -> None:
    await put(repos, {"/a.txt": b"a", "/bad.txt": b"fail"})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    doc = batched(tmp_path, datum_tries=1)
    spec = doc.pipeline.spec.model_dump(mode="json", exclude_none=True)
    spec["transform"]["err_cmd"] = ["sh", "-c", 'test -f "$images"']
    spec["pipeline"] = {"name": "batched"}
    job = await jobs.run_job(parse_pipeline_specs(json.dumps(spec))[0])
    assert (job.state, job.processed, job.recovered) == ("success", 1, 1)


async def test_a_crashed_process_is_restarted_for_the_retry_and_the_rest(
    repos: Repos, tmp_path: Path
) -> None:
    await put(repos, {"/a.txt": b"a", "/b.txt": b"crash", "/c.txt": b"c", "/d.txt": b"d"})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    job = await jobs.run_job(batched(tmp_path, datum_tries=2))
    assert (job.state, job.processed) == ("success", 4)
    crashed = {d.name: d for d in job.datums}["images:/b.txt"]
    assert crashed.attempts == 2
    assert "exited with code 7" in Path(crashed.log_path).read_text()
    served = {name: o["pid"] for name, o in (await outputs(repos, job.output_commit)).items()}
    crashed_pid = int((tmp_path / "markers" / "b.txt").read_text())
    # the retry and every datum after it ran in a new process (the datums' order is not
    # fixed, so datums before the crash may or may not show the first process)
    assert served["/b.txt"] != crashed_pid


async def test_a_datum_timeout_kills_the_process_and_the_next_datum_gets_a_new_one(
    repos: Repos, tmp_path: Path
) -> None:
    await put(repos, {"/a.txt": b"a", "/h.txt": b"hang", "/z.txt": b"z"})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    job = await jobs.run_job(batched(tmp_path, datum_tries=1, datum_timeout="1s"))
    assert (job.state, job.processed, job.failed) == ("failure", 2, 1)
    hung = {d.name: d for d in job.datums}["images:/h.txt"]
    assert "timed out after 1s" in hung.error


def test_batching_refuses_stdin_and_filters() -> None:
    base: dict[str, Any] = {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "datum_batching": True,
    }
    with pytest.raises(InvalidObject, match="stdin"):
        parse_pipeline_specs(json.dumps(base | {"transform": {"cmd": ["sh"], "stdin": ["x"]}}))
    with pytest.raises(InvalidObject, match="Filter"):
        parse_pipeline_specs(
            json.dumps(base | {"transform": {"cmd": ["true"]}, "pattern": {"filter": {}}})
        )


def test_batching_is_part_of_the_pipeline_version(tmp_path: Path) -> None:
    doc = batched(tmp_path)
    plain = batched(tmp_path, datum_batching=False)
    assert doc.version != plain.version


# Checks that the datum's root holds its inputs and an empty out/ only, then litters it.
TIDY = r"""
import json, os, sys
for line in sys.stdin:
    d = json.loads(line)
    root, name = d["PFS"], os.path.basename(d["images"])
    ls = lambda *p: sorted(os.listdir(os.path.join(root, *p)))
    seen = (ls(), ls("out"), ls("images"), ls("model"))
    if seen != (["images", "model", "out"], [], [name], ["m.bin"]):
        print("fail saw", seen, flush=True)
        continue
    open(os.path.join(root, "junk.txt"), "w").write("x")
    open(os.path.join(root, "images", "extra"), "w").write("x")
    os.makedirs(os.path.join(root, "out", name + ".d", "deep"))
    model = open(os.path.join(root, "model", "m.bin")).read()
    with open(os.path.join(root, "out", name + ".d", "deep", "r"), "w") as f:
        json.dump({"root": root, "data": open(d["images"]).read(), "model": model}, f)
    print("ok", flush=True)
"""


async def test_reused_roots_give_each_datum_only_its_inputs_and_an_empty_out(
    repos: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batchjob, "MAX_ROOTS", 2)  # 9 datums through at most 2 roots
    await put(repos, {f"/{i}.txt": f"d{i}".encode() for i in range(9)})
    await repos.create_repo("model")
    c = await repos.start_commit("model")
    await repos.put_file(c.id, "/m.bin", b"weights")  # every datum reads it: linked
    await repos.finish_commit(c.id)
    (tmp_path / "tidy.py").write_text(TIDY)
    doc = {
        "pipeline": {"name": "batched"},
        "transform": {"cmd": [sys.executable, str(tmp_path / "tidy.py")]},
        "input": {
            "cross": [
                {"pfs": {"repo": "images", "glob": "/*"}},
                {"pfs": {"repo": "model", "glob": "/"}},
            ]
        },
        "datum_batching": True,
    }
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    job = await jobs.run_job(parse_pipeline_specs(json.dumps(doc))[0])
    assert (job.state, job.processed) == ("success", 9), [d.error for d in job.datums]
    out = await outputs(repos, job.output_commit)
    assert sorted(out) == [f"/{i}.txt.d/deep/r" for i in range(9)]
    assert {o["data"] for o in out.values()} == {f"d{i}" for i in range(9)}
    assert {o["model"] for o in out.values()} == {"weights"}
    assert len({o["root"] for o in out.values()}) <= 2


class CommitChecker:
    """An observer that checks a datum reported done has its outputs in the output commit."""

    def __init__(self, repos: Repos) -> None:
        self.repos = repos
        self.reported: list[str] = []

    async def job_planned(self, job: JobResult) -> None:
        return None

    async def datums_finished(self, job: JobResult, datums: Sequence[DatumSummary]) -> None:
        assert job.output_commit is not None
        tree = await self.repos.tree(job.output_commit)  # the open commit, as committed
        for d in datums:
            name = d.name.removeprefix("images:")
            assert name in tree.paths, f"{d.name} reported before its output was committed"
            self.reported.append(name)


async def test_a_datum_is_reported_done_once_its_outputs_are_committed(
    repos: Repos, tmp_path: Path
) -> None:
    await put(repos, {f"/{i}.txt": f"d{i}".encode() for i in range(20)})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    checker = CommitChecker(repos)
    job = await jobs.run_job(batched(tmp_path), observer=checker)
    assert (job.state, job.processed) == ("success", 20)
    assert sorted(checker.reported) == sorted(f"/{i}.txt" for i in range(20))


async def test_datums_sent_ahead_of_a_crash_are_sent_again_without_using_a_try(
    repos: Repos, tmp_path: Path
) -> None:
    # /a.txt runs first (datums run in path order) and crashes with more datums sent after it
    names = ["/a.txt", *(f"/c{i}.txt" for i in range(8))]
    await put(repos, {n: (b"crash" if n == "/a.txt" else b"fine") for n in names})
    jobs = JobRunner(repos, DatumRunner(tmp_path / "work", repos))
    job = await jobs.run_job(batched(tmp_path, datum_tries=1))
    assert (job.state, job.processed, job.failed) == ("failure", 8, 1)
    crashed, *fine = sorted(job.datums, key=lambda d: d.name)
    assert (crashed.name, crashed.attempts) == ("images:/a.txt", 1)
    assert "exited with code 7" in crashed.error
    assert all(d.attempts == 1 and d.state == DatumState.SUCCESS for d in fine)
    restarted = [d for d in fine if d.log_path and "start" in Path(d.log_path).read_text()]
    assert len(restarted) == 1  # the new process started with a datum sent before the crash
