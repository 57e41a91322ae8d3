"""Repos on real files: commits and branches, file trees, chunk dedup, GC that frees space,
commit copies that move only missing chunks and resume after a failure."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeweave.errors import AlreadyExists, Conflict, InvalidObject, NotFound, StoreError
from edgeweave.pipelines.chunks import ChunkSizes
from edgeweave.pipelines.repo import Repos, open_repos

# small chunks so a test file of a few hundred KB spans several of them (each chunk of at least
# 64 KiB is a file of its own; smaller ones are packed in the database)
SIZES = ChunkSizes(min_bytes=64 * 1024, avg_bytes=128 * 1024, max_bytes=256 * 1024)


@pytest.fixture
async def repos(tmp_path: Path) -> AsyncIterator[Repos]:
    async with open_repos(tmp_path / "a", chunk_sizes=SIZES, fsync=False) as r:
        yield r


def chunk_files(root: Path) -> set[str]:
    base = root / "chunks"
    return {f.name for d in base.iterdir() if d.name != "tmp" for f in d.iterdir()}


def random_bytes(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


async def commit_files(repos: Repos, repo: str, files: dict[str, bytes]) -> str:
    commit = await repos.start_commit(repo)
    for path, data in files.items():
        await repos.put_file(commit.id, path, data)
    return (await repos.finish_commit(commit.id)).id


async def test_a_commit_holds_its_files_and_its_parent_link(repos: Repos) -> None:
    await repos.create_repo("images", "camera frames")
    first = await commit_files(repos, "images", {"/a.txt": b"A", "/dir/b.txt": b"B"})
    second = await repos.start_commit("images", description="more")
    await repos.put_file(second.id, "/dir/c.txt", b"C")
    await repos.put_file(second.id, "a.txt", b"A2")  # paths are normalised
    info = await repos.finish_commit(second.id)
    assert info.parent == first and info.origin == "user" and info.finished
    assert (await repos.get_file(info.id, "/a.txt")) == b"A2"
    assert (await repos.get_file(first, "/a.txt")) == b"A"
    assert (await repos.tree(info.id)).paths == ["/a.txt", "/dir/b.txt", "/dir/c.txt"]
    assert [c.id for c in await repos.list_commits("images")] == [info.id, first]
    assert (await repos.latest("images")) == info
    assert (await repos.resolve("images", "master")).id == info.id
    assert (await repos.resolve("images", first)).id == first
    assert await repos.branches("images") == {"master": info.id}


async def test_listing_and_globbing_show_files_and_directories(repos: Repos) -> None:
    await repos.create_repo("r")
    c = await commit_files(repos, "r", {"/foo-1": b"1", "/foo-2": b"22", "/bar/bar-1": b"333"})
    listed = {f.path: (f.size, f.is_dir) for f in await repos.list_files(c)}
    assert listed == {"/bar": (3, True), "/foo-1": (1, False), "/foo-2": (2, False)}
    assert [f.path for f in await repos.list_files(c, "/bar")] == ["/bar/bar-1"]
    assert [f.path for f in await repos.glob_files(c, "/*/*")] == ["/bar/bar-1"]
    with pytest.raises(NotFound):
        await repos.list_files(c, "/nope")


async def test_one_open_commit_per_branch_and_finished_commits_are_immutable(
    repos: Repos,
) -> None:
    await repos.create_repo("r")
    open_commit = await repos.start_commit("r")
    with pytest.raises(Conflict, match="open commit"):
        await repos.start_commit("r")
    other_branch = await repos.start_commit("r", "dev")
    assert other_branch.branch == "dev"
    await repos.finish_commit(open_commit.id)
    with pytest.raises(Conflict, match="finished"):
        await repos.put_file(open_commit.id, "/x", b"x")
    with pytest.raises(Conflict):
        await repos.finish_commit(open_commit.id)
    with pytest.raises(AlreadyExists):
        await repos.create_repo("r")
    with pytest.raises(NotFound, match="repo 'nope'"):
        await repos.start_commit("nope")
    with pytest.raises(InvalidObject):
        await repos.create_repo("bad name")


async def test_a_path_cannot_be_both_a_file_and_a_directory(repos: Repos) -> None:
    await repos.create_repo("r")
    await commit_files(repos, "r", {"/a": b"file", "/d/x": b"x"})
    c = await repos.start_commit("r")
    with pytest.raises(InvalidObject, match="/a is a file"):
        await repos.put_file(c.id, "/a/b", b"")
    with pytest.raises(InvalidObject, match="is a directory"):
        await repos.put_file(c.id, "/d", b"")
    with pytest.raises(InvalidObject, match=r"'\.\.'"):
        await repos.put_file(c.id, "/d/../x", b"")


async def test_deleting_files_and_directories_and_reading_the_changes(repos: Repos) -> None:
    await repos.create_repo("r")
    first = await commit_files(repos, "r", {"/a": b"1", "/d/x": b"2", "/d/y": b"3"})
    c = await repos.start_commit("r")
    assert await repos.delete_file(c.id, "/d") == 2
    await repos.put_file(c.id, "/b", b"4")
    assert (await repos.tree(c.id)).paths == ["/a", "/b"]  # an open commit reads too
    with pytest.raises(NotFound):
        await repos.delete_file(c.id, "/nope")
    second = (await repos.finish_commit(c.id)).id
    assert (await repos.tree(second)).paths == ["/a", "/b"]
    assert await repos.changed_paths(first, second) == ["/b", "/d/x", "/d/y"]
    third = await commit_files(repos, "r", {"/a": b"new"})
    assert await repos.changed_paths(first, third) == ["/a", "/b", "/d/x", "/d/y"]
    # not an ancestor: the trees are compared
    assert await repos.changed_paths(third, first) == ["/a", "/b", "/d/x", "/d/y"]


async def test_identical_content_is_stored_once(repos: Repos, tmp_path: Path) -> None:
    await repos.create_repo("r")
    big = random_bytes(600_000)
    c = await repos.start_commit("r")
    await repos.put_file(c.id, "/one", big)
    stored = chunk_files(tmp_path / "a")
    assert len(stored) >= 3
    source = tmp_path / "copy.bin"
    source.write_bytes(big)
    await repos.put_file_from(c.id, "/two", source)
    await repos.put_files(c.id, [("/small-1", b"same"), ("/small-2", b"same")])
    assert chunk_files(tmp_path / "a") == stored
    await repos.finish_commit(c.id)
    assert await repos.get_file(c.id, "/two") == big
    dest = tmp_path / "out.bin"
    await repos.write_file(c.id, "/one", dest)
    assert dest.read_bytes() == big


async def test_an_edit_in_a_large_file_stores_only_the_chunks_around_it(
    repos: Repos, tmp_path: Path
) -> None:
    await repos.create_repo("r")
    big = random_bytes(1_000_000)
    await commit_files(repos, "r", {"/video": big})
    before = chunk_files(tmp_path / "a")
    edited = big[:500_000] + b"an insertion" + big[500_000:]
    c = await commit_files(repos, "r", {"/video": edited})
    added = chunk_files(tmp_path / "a") - before
    assert 1 <= len(added) <= 2, f"{len(added)} new chunks of {len(before)}"
    assert await repos.get_file(c, "/video") == edited


async def test_gc_deletes_unreferenced_chunks_and_frees_disk_space(
    repos: Repos, tmp_path: Path
) -> None:
    await repos.create_repo("r")
    keep = await commit_files(repos, "r", {"/keep": random_bytes(300_000, 1), "/s": b"small"})
    drop = await commit_files(repos, "r", {"/drop": random_bytes(400_000, 2), "/t": b"tiny"})
    chunk_dir = tmp_path / "a" / "chunks"

    def usage() -> int:
        return sum(f.stat().st_size for f in chunk_dir.rglob("*") if f.is_file())

    nothing = await repos.gc()
    assert (nothing.chunks_deleted, nothing.bytes_freed) == (0, 0)
    before = usage()
    with pytest.raises(Conflict, match="child"):
        await repos.delete_commit(keep)
    await repos.delete_commit(drop)
    report = await repos.gc()
    assert report.bytes_freed == 400_000 + len(b"tiny")
    # /drop's last chunk may be under 64 KiB: packed in the database, not a file
    assert 400_000 - 64 * 1024 <= before - usage() <= 400_000
    assert (await repos.latest("r")) is not None
    assert await repos.get_file(keep, "/keep") == random_bytes(300_000, 1)
    await repos.delete_repo("r")
    await repos.gc()
    assert usage() == 0


async def test_gc_gives_packed_pages_back_to_the_file_system(tmp_path: Path) -> None:
    async with open_repos(tmp_path / "p", fsync=False) as repos:
        await repos.create_repo("r")
        c = await repos.start_commit("r")
        await repos.put_files(c.id, [(f"/f{i}", random_bytes(30_000, i)) for i in range(100)])
        await repos.finish_commit(c.id)
        files = [tmp_path / "p" / name for name in ("repos.db", "repos.db-wal")]

        def db_bytes() -> int:
            return sum(f.stat().st_size for f in files if f.exists())

        await repos.delete_repo("r")
        assert db_bytes() > 3_000_000
        report = await repos.gc()
        assert report.chunks_deleted == 100 and report.bytes_freed == 3_000_000
        assert db_bytes() < 300_000  # the freed pages went back to the file system


async def test_copying_a_commit_moves_only_missing_chunks(repos: Repos, tmp_path: Path) -> None:
    await repos.create_repo("r")
    base = random_bytes(500_000, 3)
    first = await commit_files(repos, "r", {"/model": base, "/cfg": b"v1"})
    second = await commit_files(repos, "r", {"/model": base + b"more", "/extra": b"e"})
    async with open_repos(tmp_path / "b", chunk_sizes=SIZES, fsync=False) as other:
        assert len(await repos.missing_chunks(other, first)) == len(
            await repos.chunk_digests(first)
        )
        report = await repos.copy_commit(other, first)
        assert report.chunks_moved == report.chunks_total and report.skipped == []
        assert await other.get_file(first, "/model") == base
        copied = await other.inspect_commit(first)
        assert copied.finished and copied.repo == "r"
        missing = await repos.missing_chunks(other, second)
        again = await repos.copy_commit(other, second)
        assert again.chunks_moved == len(missing) < again.chunks_total
        assert again.bytes_moved < len(base) // 2
        assert await other.get_file(second, "/model") == base + b"more"
        assert (await other.inspect_commit(second)).parent == first
        repeat = await repos.copy_commit(other, second)  # a retried copy: idempotent
        assert (repeat.chunks_moved, repeat.bytes_moved) == (0, 0)
        assert len(await other.list_commits("r")) == 2


async def test_an_interrupted_copy_resumes_without_moving_chunks_twice(
    repos: Repos, tmp_path: Path
) -> None:
    await repos.create_repo("r")
    data = random_bytes(800_000, 4)
    commit = await commit_files(repos, "r", {"/big": data})
    digests = sorted(await repos.chunk_digests(commit))
    large = [d for d in digests if (tmp_path / "a" / "chunks" / d[:2] / d[2:]).exists()]
    victim = tmp_path / "a" / "chunks" / large[-1][:2] / large[-1][2:]
    good = victim.read_bytes()
    os.chmod(victim, 0o644)
    victim.write_bytes(b"corrupt" + good[7:])
    async with open_repos(tmp_path / "b", chunk_sizes=SIZES, fsync=False) as other:
        with pytest.raises(StoreError, match="corrupt"):
            await repos.copy_commit(other, commit)
        left = await repos.missing_chunks(other, commit)
        assert large[-1] in left and len(left) < len(digests)
        victim.write_bytes(good)
        report = await repos.copy_commit(other, commit)
        assert report.chunks_moved == len(left)
        assert await other.get_file(commit, "/big") == data
