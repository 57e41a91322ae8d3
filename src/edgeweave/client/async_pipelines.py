"""Pipeline calls of the asyncio client: the same methods as :mod:`.pipelines`, as coroutines.

A mixin of :class:`~.async_http.AsyncClient`; requests come from :mod:`.requests`, so the two
clients cannot drift apart. ``put_file`` takes an async or plain iterable of byte blocks;
``get_file`` and ``job_logs`` are async iterators.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from edgeweave.client import requests as rq
from edgeweave.client._httpx import httpx
from edgeweave.client.core import ClientCore
from edgeweave.client.transport import build, translated_errors, watch_timeout


class AsyncPipelineMethods(ClientCore):
    _http: httpx.AsyncClient

    async def _object(self, request: rq.Request) -> dict[str, Any]:
        raise NotImplementedError  # the client defines it

    async def _items(self, request: rq.Request) -> builtins.list[dict[str, Any]]:
        return list((await self._object(request)).get("items") or [])

    # ---- repos and commits ---------------------------------------------------------------

    async def create_repo(
        self, name: str, description: str = "", node: str | None = None
    ) -> dict[str, Any]:
        return await self._object(rq.create_repo(name, description, node))

    async def list_repos(self) -> builtins.list[dict[str, Any]]:
        return await self._items(rq.Request("GET", rq.PFS_REPOS))

    async def get_repo(self, name: str) -> dict[str, Any]:
        return await self._object(rq.repo(name))

    async def delete_repo(self, name: str) -> dict[str, Any]:
        return await self._object(rq.repo(name, "DELETE"))

    async def list_commits(
        self, repo: str, branch: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Newest first."""
        return await self._items(rq.list_commits(repo, branch, limit))

    async def inspect_commit(self, repo: str, ref: str) -> dict[str, Any]:
        """A commit by id, or a branch's head; with its file count, size and job."""
        return await self._object(rq.commit(repo, ref))

    async def start_commit(self, repo: str, branch: str, description: str = "") -> dict[str, Any]:
        return await self._object(rq.start_commit(repo, branch, description))

    async def finish_commit(self, repo: str, commit_id: str) -> dict[str, Any]:
        return await self._object(rq.finish_commit(repo, commit_id))

    # ---- files -----------------------------------------------------------------------------

    async def put_file(
        self,
        repo: str,
        branch: str,
        path: str,
        blocks: Iterable[bytes] | AsyncIterable[bytes],
        size: int,
        commit_id: str | None = None,
    ) -> dict[str, Any]:
        """Stream ``size`` bytes to ``path``: a new commit on ``branch``, or into the open
        ``commit_id``. Answers ``{"commit", "file"}``."""
        request = rq.file("PUT", repo, branch, path, commit_id)
        http_request = self._http.build_request(
            "PUT",
            request.path,
            params=request.params,
            content=blocks if isinstance(blocks, AsyncIterable) else _aiter(blocks),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        with translated_errors(self.server, request):
            answer = await self._http.send(http_request)
        return self._decode_object(request, answer.status_code, answer.content)

    async def get_file(self, repo: str, ref: str, path: str) -> AsyncIterator[bytes]:
        """A file's content in blocks."""
        request = rq.file("GET", repo, ref, path)
        with translated_errors(self.server, request):
            answer = await self._http.send(build(self._http, request), stream=True)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, await answer.aread())
                async for block in answer.aiter_bytes():
                    yield block
            finally:
                await answer.aclose()

    async def delete_file(
        self, repo: str, branch: str, path: str, commit_id: str | None = None
    ) -> dict[str, Any]:
        return await self._object(rq.file("DELETE", repo, branch, path, commit_id))

    async def list_files(
        self, repo: str, ref: str, path: str = "/"
    ) -> builtins.list[dict[str, Any]]:
        return await self._items(rq.commit(repo, ref, "/files", {"path": path}))

    async def glob_files(self, repo: str, ref: str, pattern: str) -> builtins.list[dict[str, Any]]:
        return await self._items(rq.commit(repo, ref, "/glob", {"pattern": pattern}))

    async def lineage(self, repo: str, ref: str, path: str) -> dict[str, Any]:
        """The file and, recursively, the input files it was made from (``inputs``)."""
        answer = await self._object(rq.commit(repo, ref, "/lineage", {"path": path}))
        return dict(answer.get("root") or {})

    # ---- jobs --------------------------------------------------------------------------------

    async def list_jobs(
        self, pipeline: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Newest first."""
        return await self._items(rq.list_jobs(pipeline, limit))

    async def inspect_job(self, job_id: str) -> dict[str, Any]:
        return await self._object(rq.job(job_id))

    async def list_datums(
        self, job_id: str, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        params = {"limit": str(limit)} if limit is not None else {}
        return await self._items(rq.job(job_id, "/datums", params))

    async def job_logs(self, job_id: str, datum: str | None = None) -> AsyncIterator[str]:
        """Lines of the logs of a job's datums."""
        request = rq.job(job_id, "/logs", {"datum": datum} if datum else {})
        with translated_errors(self.server, request):
            answer = await self._http.send(build(self._http, request), stream=True)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, await answer.aread())
                async for line in answer.aiter_lines():
                    yield line
            finally:
                await answer.aclose()

    async def wait_pipelines(
        self, names: builtins.list[str], namespace: str | None = None, timeout_s: float = 60.0
    ) -> bool:
        """True once the pipelines (all when none is named) and those upstream of them have
        processed every input commit; False at the timeout."""
        request = rq.wait_pipelines(names, namespace or self.namespace, timeout_s)
        http_request = build(self._http, request)
        http_request.extensions["timeout"] = watch_timeout(self.settings).as_dict()
        http_request.extensions["timeout"]["read"] = timeout_s + self.settings.timeout_s
        with translated_errors(self.server, request):
            answer = await self._http.send(http_request)
        return bool(self._decode_object(request, answer.status_code, answer.content)["settled"])


async def _aiter(blocks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for block in blocks:
        yield block
