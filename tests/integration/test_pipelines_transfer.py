"""Commit transfer between two real repo stores, the manifest crossing as JSON as it would
between processes: only missing chunks move, a repeated push moves zero bytes, a commit can
land on a branch named after its source (the Merger's keying), corrupt chunks are refused."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeweave.errors import BadRequest, Conflict, InvalidObject
from edgeweave.pipelines.chunks import ChunkSizes
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.transfer import CommitManifest, manifest_from_json, pull_commit

SIZES = ChunkSizes(min_bytes=64 * 1024, avg_bytes=128 * 1024, max_bytes=256 * 1024)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Repos, Repos]]:
    async with (
        open_repos(tmp_path / "cloud", chunk_sizes=SIZES, fsync=False) as cloud,
        open_repos(tmp_path / "node", chunk_sizes=SIZES, fsync=False) as node,
    ):
        yield cloud, node


async def commit(repos: Repos, repo: str, files: dict[str, bytes]) -> str:
    info = await repos.start_commit(repo, "master")
    for path, data in files.items():
        await repos.put_file(info.id, path, data)
    return (await repos.finish_commit(info.id)).id


def over_the_wire(manifest: CommitManifest) -> CommitManifest:
    return manifest_from_json(json.loads(json.dumps(manifest.as_json())))


async def test_a_model_pushed_twice_moves_its_chunks_once_and_an_update_only_the_change(
    stores: tuple[Repos, Repos],
) -> None:
    cloud, node = stores
    await cloud.create_repo("models")
    model = random.Random(5).randbytes(1_500_000)
    first = await commit(cloud, "models", {"/model.bin": model})
    manifest = over_the_wire(await cloud.manifest(first))
    pushed = await pull_commit(cloud.read_chunk, manifest, node)
    assert pushed.bytes_moved == len(model) and pushed.chunks_moved == pushed.chunks_total
    assert await node.get_file(first, "/model.bin") == model
    again = await pull_commit(cloud.read_chunk, manifest, node)
    assert (again.chunks_moved, again.bytes_moved) == (0, 0)
    tuned = model[:700_000] + b"tuned" + model[700_000:]
    second = await commit(cloud, "models", {"/model.bin": tuned})
    update = await pull_commit(cloud.read_chunk, over_the_wire(await cloud.manifest(second)), node)
    assert 0 < update.bytes_moved < len(tuned) // 3
    assert (await node.inspect_commit(second)).parent == first
    assert await node.get_file(second, "/model.bin") == tuned


async def test_merging_keys_commits_by_source_branch_and_ignores_retries(
    stores: tuple[Repos, Repos],
) -> None:
    cloud, node = stores
    await node.create_repo("counts")
    made = await commit(node, "counts", {"/hour-10.json": b'{"people": 4}'})
    manifest = over_the_wire(await node.manifest(made))
    for _ in range(2):  # the copy is retried after a lost acknowledgement
        await pull_commit(node.read_chunk, manifest, cloud, branch="node-a")
    assert (await cloud.branches("counts")) == {"node-a": made}
    assert await cloud.get_file(made, "/hour-10.json") == b'{"people": 4}'


async def test_corrupt_chunks_and_malformed_manifests_are_refused(
    stores: tuple[Repos, Repos],
) -> None:
    cloud, node = stores
    await cloud.create_repo("models")
    made = await commit(cloud, "models", {"/a": b"alpha" * 100})
    manifest = await cloud.manifest(made)
    [digest] = manifest.chunk_digests()
    with pytest.raises(InvalidObject, match="corrupt"):
        await node.receive_chunks([(digest, b"not alpha")])
    with pytest.raises(Conflict, match="not here yet"):
        await node.import_manifest(manifest)
    doc = manifest.as_json()
    doc["files"][0][0] = "relative/path"
    with pytest.raises(BadRequest, match="files"):
        manifest_from_json(doc)
    doc = manifest.as_json()
    doc["commit"]["finishedAt"] = None
    with pytest.raises(BadRequest, match="finished"):
        manifest_from_json(doc)
