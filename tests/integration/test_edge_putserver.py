"""`edge file put`'s path into an agent's repos: the loopback endpoint with a real repo store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeweave.edge.pipelines.putserver import open_put_server, put_local
from edgeweave.errors import BadRequest, NotFound
from edgeweave.pipelines.repo import open_repos


async def test_a_file_becomes_a_commit_and_bad_puts_are_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    data = tmp_path / "node"
    root = data / "pipelines"
    async with open_repos(root, fsync=False) as repos:
        await repos.create_repo("images")

        async def put(repo: str, branch: str, files: list[tuple[str, Path]]) -> str:
            info = await repos.start_commit(repo, branch)
            for path, upload in files:
                await repos.put_file_from(info.id, path, upload)
            return (await repos.finish_commit(info.id)).id

        small, large = tmp_path / "a.txt", tmp_path / "big.bin"
        small.write_bytes(b"hello")
        large.write_bytes(b"x" * 101)
        async with open_put_server(root, 100, put):
            assert (root / "put.json").stat().st_mode & 0o077 == 0  # the token is private
            commit = await put_local(data, "images", "master", [("/a.txt", small)])
            assert await repos.get_file(commit, "/a.txt") == b"hello"
            both = [("/x/1.txt", small), ("/x/2.txt", small)]
            two = await put_local(data, "images", "master", both)  # one commit for both
            assert [await repos.get_file(two, p) for p, _ in both] == [b"hello", b"hello"]
            assert (await repos.inspect_commit(two)).parent == commit
            with pytest.raises(BadRequest, match=r"/big.bin is over 100 bytes.*max_file_bytes"):
                await put_local(data, "images", "master", [("/ok", small), ("/big.bin", large)])
            assert not list((root / "uploads").iterdir())  # nothing left behind
            endpoint = json.loads((root / "put.json").read_text())
            (root / "put.json").write_text(json.dumps({**endpoint, "token": "guess"}))
            with pytest.raises(BadRequest, match="wrong token"):
                await put_local(data, "images", "master", [("/a.txt", small)])
        with pytest.raises(NotFound, match="not running"):
            await put_local(data, "images", "master", [("/a.txt", small)])
