"""Cloud-side pipelines end to end: a real cloud in this process (TLS, loopback, port 0), the
real async client, real datum processes. Repos and files over the API, a pipeline that runs on
its own when files arrive, incremental jobs, a downstream pipeline chained on the new output,
lineage back to the put files, err_cmd recovery, failures, and a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.client.async_http import AsyncClient
from edgeweave.config.settings import PipelineSettings
from edgeweave.errors import Conflict, InvalidObject, NotFound, PayloadTooLarge
from edgeweave.testing.cloud import open_test_cloud

UPPER = ["sh", "-c", 'for f in "$PFS"/docs/*; do tr a-z A-Z < "$f" > "$PFS/out/${f##*/}"; done']
COUNT = ["sh", "-c", 'cat "$PFS"/upper/* | wc -c > "$PFS/out/chars"']


def pipeline(name: str, repo: str, glob: str, cmd: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"transform": {"cmd": cmd}, "input": {"pfs": {"repo": repo, "glob": glob}}, **spec},
    }


async def put(client: AsyncClient, repo: str, path: str, data: bytes) -> dict[str, Any]:
    return await client.put_file(repo, "master", path, [data], len(data))


async def get(client: AsyncClient, repo: str, path: str, ref: str = "master") -> bytes:
    return b"".join([b async for b in client.get_file(repo, ref, path)])


async def settle(client: AsyncClient, *names: str) -> None:
    assert await client.wait_pipelines(list(names), timeout_s=30)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AsyncClient]:
    settings = PipelineSettings(max_file_bytes=1 << 20)
    async with (
        open_test_cloud(tmp_path / "cloud", pipelines=settings) as cloud,
        cloud.client() as c,
    ):
        yield c


async def test_repos_files_and_commits_through_the_api(client: AsyncClient) -> None:
    await client.create_repo("images", "camera frames")
    with pytest.raises(NotFound):
        await put(client, "nope", "/a.txt", b"x")
    first = await put(client, "images", "/a.txt", b"alpha")
    assert first["file"] == {
        "path": "/a.txt",
        "type": "file",
        "size": 5,
        "digest": first["file"]["digest"],
    }
    await put(client, "images", "/dir/b.txt", b"beta")
    big = b"z" * (3 << 19)  # 1.5 MiB, over this cloud's 1 MiB file limit
    with pytest.raises(PayloadTooLarge):
        await put(client, "images", "/big.bin", big)

    open_commit = await client.start_commit("images", "master", "two at once")
    for name in ("/c.txt", "/d.txt"):
        await client.put_file("images", "master", name, [b"c"], 1, open_commit["id"])
    done = await client.finish_commit("images", open_commit["id"])
    assert done["finishedAt"] is not None and done["description"] == "two at once"

    assert await get(client, "images", "/a.txt") == b"alpha"
    assert await get(client, "images", "/a.txt", first["commit"]["id"]) == b"alpha"
    listed = await client.list_files("images", "master", "/")
    assert [(f["path"], f["type"], f["size"]) for f in listed] == [
        ("/a.txt", "file", 5),
        ("/c.txt", "file", 1),
        ("/d.txt", "file", 1),
        ("/dir", "dir", 4),
    ]
    assert [f["path"] for f in await client.glob_files("images", "master", "/*.txt")] == [
        "/a.txt",
        "/c.txt",
        "/d.txt",
    ]
    commits = await client.list_commits("images")
    assert len(commits) == 3 and commits[0]["id"] == done["id"]
    head = await client.inspect_commit("images", "master")
    assert (head["files"], head["sizeBytes"], head["job"]) == (4, 11, None)

    deleted = await client.delete_file("images", "master", "/dir")
    assert deleted["deleted"] == 1
    with pytest.raises(NotFound):
        await get(client, "images", "/dir/b.txt")
    [repo] = await client.list_repos()
    assert (repo["name"], repo["sizeBytes"], repo["description"]) == ("images", 7, "camera frames")
    await client.delete_repo("images")
    assert await client.list_repos() == []


async def test_a_pipeline_runs_incrementally_and_chains_downstream(client: AsyncClient) -> None:
    await client.create_repo("docs")
    await put(client, "docs", "/a.txt", b"alpha")
    await put(client, "docs", "/b.txt", b"beta")
    await client.create(pipeline("upper", "docs", "/*", UPPER, parallelism_spec={"constant": 2}))
    await client.create(pipeline("count", "upper", "/", COUNT))
    await settle(client, "count")
    assert await get(client, "upper", "/a.txt") == b"ALPHA"
    assert await get(client, "count", "/chars") == b"9\n"
    [first] = await client.list_jobs("upper")
    assert (first["state"], first["datums"]["processed"], first["datums"]["skipped"]) == (
        "success",
        2,
        0,
    )

    docs_commit = (await put(client, "docs", "/c.txt", b"gamma"))["commit"]["id"]
    await settle(client, "count")
    newest, _ = await client.list_jobs("upper")
    assert newest["datums"] == {
        "total": 3,
        "processed": 1,
        "skipped": 2,
        "failed": 0,
        "recovered": 0,
    }
    assert newest["incremental"] is True
    datums = await client.list_datums(newest["id"])
    assert (datums[0]["name"], datums[0]["state"]) == ("docs:/c.txt", "success")
    assert sorted(d["state"] for d in datums[1:]) == ["skipped", "skipped"]
    assert await get(client, "count", "/chars") == b"14\n"  # downstream ran on the new output
    assert len(await client.list_jobs("count")) == 2

    status = (await client.get("pipelines", "upper", "default"))["status"]
    assert status["state"] == "idle" and status["lastJob"]["id"] == newest["id"]

    root = await client.lineage("count", "master", "/chars")
    assert root["pipeline"] == "count"
    upper_files = {n["path"]: n for n in root["inputs"]}
    assert sorted(upper_files) == ["/a.txt", "/b.txt", "/c.txt"]
    [leaf] = upper_files["/c.txt"]["inputs"]
    assert (leaf["repo"], leaf["commit"], leaf["path"], leaf["inputs"]) == (
        "docs",
        docs_commit,
        "/c.txt",
        [],
    )
    assert upper_files["/a.txt"]["datumJob"] == first["id"]  # skipped: run by the first job

    logs = [line async for line in client.job_logs(newest["id"])]
    assert logs[0].startswith("=== datum ") and "docs:/c.txt" in logs[0]
    with pytest.raises(Conflict):
        await client.delete_repo("docs")  # a pipeline reads it


async def test_err_cmd_recovers_a_failed_datum_and_failures_are_recorded(
    client: AsyncClient,
) -> None:
    await client.create_repo("raw")
    await put(client, "raw", "/good.txt", b"ok")
    await put(client, "raw", "/bad.txt", b"no")
    fragile = [
        "sh",
        "-c",
        'echo "reading $raw"; case "$raw" in *bad*) exit 7;; esac; cp "$raw" "$PFS/out/"',
    ]
    recovering = pipeline(
        "recovering",
        "raw",
        "/*",
        fragile,
        datum_tries=2,
        transform={"cmd": fragile, "err_cmd": ["sh", "-c", "echo giving up on $raw"]},
    )
    await client.create(recovering)
    await client.create(pipeline("failing", "raw", "/*", fragile, datum_tries=1))
    await settle(client, "recovering", "failing")

    [job] = await client.list_jobs("recovering")
    assert job["state"] == "success"
    assert (job["datums"]["processed"], job["datums"]["recovered"]) == (1, 1)
    states = {d["name"]: d for d in await client.list_datums(job["id"])}
    bad = states["raw:/bad.txt"]
    assert (bad["state"], bad["attempts"]) == ("recovered", 2)
    assert "giving up on" in bad["logTail"]
    assert [f["path"] for f in await client.list_files("recovering", "master")] == ["/good.txt"]

    [failed] = await client.list_jobs("failing")
    assert (failed["state"], failed["datums"]["failed"], failed["outputCommit"]) == (
        "failure",
        1,
        None,
    )
    assert "1 datum(s) failed" in failed["error"]
    status = (await client.get("pipelines", "failing", "default"))["status"]
    assert status["state"] == "failure"
    one = [line async for line in client.job_logs(failed["id"], bad["id"][:10])]
    assert any("exited with code 7" in line for line in one)


async def test_specs_are_checked_and_edge_placed_pipelines_are_left_alone(
    client: AsyncClient,
) -> None:
    with pytest.raises(InvalidObject) as bad:
        await client.create(pipeline("bad", "docs", "/[", UPPER))
    assert "glob" in bad.value.message
    merger = pipeline("m", "docs", "/", ["true"], placement={"nodeNames": ["a"]})
    merger["spec"]["pattern"] = {"merger": {"key": {"path": "/*/**"}}}  # no capture group
    with pytest.raises(InvalidObject) as bad:
        await client.create(merger)
    assert bad.value.field == "spec.pattern.merger.key.path"
    await client.create_repo("docs")
    await put(client, "docs", "/a.txt", b"a")
    placed = pipeline("edgy", "docs", "/*", UPPER, placement={"nodeSelector": {"role": "cam"}})
    await client.create(placed)
    await settle(client, "edgy")
    assert await client.list_jobs("edgy") == []
    status = (await client.get("pipelines", "edgy", "default"))["status"]
    assert status["state"] == "waiting" and "edge nodes" in status["message"]


async def test_jobs_and_datum_history_survive_a_cloud_restart(tmp_path: Path) -> None:
    data = tmp_path / "cloud"
    async with open_test_cloud(data) as cloud, cloud.client() as c:
        await c.create_repo("docs")
        await put(c, "docs", "/a.txt", b"alpha")
        await put(c, "docs", "/b.txt", b"beta")
        await c.create(pipeline("upper", "docs", "/*", UPPER))
        await settle(c, "upper")
    async with open_test_cloud(data) as cloud, cloud.client() as c:
        await settle(c, "upper")
        assert len(await c.list_jobs("upper")) == 1  # nothing new: no job after the restart
        await put(c, "docs", "/c.txt", b"gamma")
        await settle(c, "upper")
        newest = (await c.list_jobs("upper"))[0]
        assert (newest["datums"]["processed"], newest["datums"]["skipped"]) == (1, 2)
        files = [f["path"] for f in await c.list_files("upper", "master")]
        assert files == ["/a.txt", "/b.txt", "/c.txt"]


def test_the_example_specs_parse() -> None:
    from edgeweave.pipelines.spec import parse_pipeline_specs

    root = Path(__file__).parents[2] / "examples" / "pipelines" / "wordcount"
    [wordcount] = parse_pipeline_specs((root / "wordcount.json").read_text(), "wordcount.json")
    [totals] = parse_pipeline_specs((root / "totals.yaml").read_text(), "totals.yaml")
    assert wordcount.pipeline.spec.input.repos() == ["docs", "code"]
    assert json.loads((root / "wordcount.json").read_text())["pipeline"]["name"] == "wordcount"
    assert totals.pipeline.spec.input.repos() == ["wordcount"]


async def test_a_new_transform_reruns_every_datum_with_the_new_code(client: AsyncClient) -> None:
    await client.create_repo("docs")
    await put(client, "docs", "/a.txt", b"Alpha")
    await put(client, "docs", "/b.txt", b"Beta")
    await client.create(pipeline("upper", "docs", "/*", UPPER))
    await settle(client, "upper")
    stored = await client.get("pipelines", "upper", "default")
    lower = ["sh", "-c", 'for f in "$PFS"/docs/*; do tr A-Z a-z < "$f" > "$PFS/out/${f##*/}"; done']
    stored["spec"]["transform"]["cmd"] = lower
    await client.update(stored)
    await settle(client, "upper")
    newest = (await client.list_jobs("upper"))[0]
    assert (newest["datums"]["processed"], newest["datums"]["skipped"]) == (2, 0)
    assert await get(client, "upper", "/b.txt") == b"beta"


async def test_a_cloud_placed_cron_pipeline_ticks_and_an_edge_placed_one_does_not(
    client: AsyncClient,
) -> None:
    stamp = ["sh", "-c", 'basename "$tick" > "$PFS/out/$(basename "$tick")"']
    ticking = pipeline("ticker", "unused", "/*", stamp)
    ticking["spec"]["input"] = {"cron": {"name": "tick", "spec": "@every 1s", "overwrite": True}}
    placed = json.loads(json.dumps(ticking))
    placed["metadata"]["name"] = "edgetick"
    placed["spec"]["placement"] = {"nodeSelector": {"role": "cam"}}
    await client.create(placed)
    await client.create(ticking)

    async def jobs() -> list[dict[str, Any]]:
        async with asyncio.timeout(30):
            while True:  # polling the job list for the first tick's job to end
                ended = [j for j in await client.list_jobs("ticker") if j["state"] != "running"]
                if ended:
                    return ended
                await asyncio.sleep(0.05)

    [job, *_] = await jobs()
    assert job["state"] == "success" and job["datums"]["processed"] == 1
    [out] = await client.list_files("ticker", job["outputCommit"], "/")
    assert (await get(client, "ticker", out["path"], job["outputCommit"])).decode().strip() == (
        out["path"][1:]
    )
    repos = {r["name"] for r in await client.list_repos()}
    assert "ticker_tick" in repos and "edgetick_tick" not in repos
    assert await client.list_jobs("edgetick") == []
    with pytest.raises(Conflict, match="used by pipeline"):
        await client.delete_repo("ticker_tick")  # the pipeline's cron input ticks into it
