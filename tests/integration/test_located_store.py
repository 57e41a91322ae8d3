"""A repo located on a node, on the cloud's side, with a real state store (SQLite and
PostgreSQL): the Repo object that sends it to the node, the commits the node reports recorded
with their file lists and parents, replays ignored, and bytes and writes refused naming the
node."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeweave.cloud.pipelines import open_pipelines
from edgeweave.cloud.store.base import CloudStore
from edgeweave.config.settings import PipelineSettings
from edgeweave.errors import AlreadyExists, Conflict, NotFound
from edgeweave.pipelines.commitreport import decode_commit_report, encode_commit_report
from edgeweave.pipelines.repo import open_repos


async def test_node_commits_are_listed_in_the_cloud_and_their_bytes_name_the_node(
    store: CloudStore, tmp_path: Path
) -> None:
    async with (
        open_pipelines(store, tmp_path / "cloud", PipelineSettings()) as service,
        open_repos(tmp_path / "node", fsync=False) as node,
    ):
        await service.create_repo("frames", "camera frames", node="node-a")
        obj = await store.get("Repo", "default", "frames")
        assert obj["spec"]["location"] == {"node": "node-a"}
        assert service.location("frames") == "node-a"
        with pytest.raises(AlreadyExists):
            await service.create_repo("frames", node="node-b")

        await node.create_repo("frames")
        made = []
        for path in ("/f1.jpg", "/f2.jpg"):
            info = await node.start_commit("frames", "master")
            await node.put_file(info.id, path, b"frame " + path.encode())
            made.append((await node.finish_commit(info.id)).id)
        reports = [decode_commit_report(encode_commit_report(await node.manifest(c))) for c in made]
        await service.record_node_commits("node-a", reports)
        await service.record_node_commits("node-a", reports)  # a replay after a lost ack

        commits = await service.repos.list_commits("frames")
        assert [c.id for c in commits] == made[::-1]
        assert commits[0].parent == made[0] and "node:node-a" in commits[0].provenance
        _, files = await service.list_files("frames", "master", "/")
        assert sorted(f.path for f in files) == ["/f1.jpg", "/f2.jpg"]
        with pytest.raises(NotFound, match="lives on node node-a"):
            await service.open_file("frames", "master", "/f1.jpg")
        with pytest.raises(Conflict, match="lives on node node-a"):
            await service.start_commit("frames", "master")
