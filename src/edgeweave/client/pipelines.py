"""Pipeline calls of the synchronous client: repos, commits, files, jobs, datums, lineage.

A mixin of :class:`~.http.Client` (the requests live in :mod:`.requests`, like every other
call). Files travel as streams both ways: :meth:`PipelineMethods.put_file` sends an iterable
of byte blocks with its length, :meth:`PipelineMethods.get_file` yields blocks. Answers are
plain dicts shaped as docs/api.md shows ("Pipelines").
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from typing import Any

from edgeweave.client import requests as rq
from edgeweave.client._httpx import httpx
from edgeweave.client.core import ClientCore
from edgeweave.client.transport import build, translated_errors, watch_timeout


class PipelineMethods(ClientCore):
    _http: httpx.Client

    def _object(self, request: rq.Request) -> dict[str, Any]:
        raise NotImplementedError  # the client defines it

    def _items(self, request: rq.Request) -> builtins.list[dict[str, Any]]:
        return list(self._object(request).get("items") or [])

    # ---- repos and commits ---------------------------------------------------------------

    def create_repo(
        self, name: str, description: str = "", node: str | None = None
    ) -> dict[str, Any]:
        return self._object(rq.create_repo(name, description, node))

    def list_repos(self) -> builtins.list[dict[str, Any]]:
        return self._items(rq.Request("GET", rq.PFS_REPOS))

    def get_repo(self, name: str) -> dict[str, Any]:
        return self._object(rq.repo(name))

    def delete_repo(self, name: str) -> dict[str, Any]:
        return self._object(rq.repo(name, "DELETE"))

    def list_commits(
        self, repo: str, branch: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Newest first."""
        return self._items(rq.list_commits(repo, branch, limit))

    def inspect_commit(self, repo: str, ref: str) -> dict[str, Any]:
        """A commit by id, or a branch's head; with its file count, size and job."""
        return self._object(rq.commit(repo, ref))

    def start_commit(self, repo: str, branch: str, description: str = "") -> dict[str, Any]:
        return self._object(rq.start_commit(repo, branch, description))

    def finish_commit(self, repo: str, commit_id: str) -> dict[str, Any]:
        return self._object(rq.finish_commit(repo, commit_id))

    # ---- files -----------------------------------------------------------------------------

    def put_file(
        self,
        repo: str,
        branch: str,
        path: str,
        blocks: Iterable[bytes],
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
            content=blocks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        with translated_errors(self.server, request):
            answer = self._http.send(http_request)
        return self._decode_object(request, answer.status_code, answer.content)

    def get_file(self, repo: str, ref: str, path: str) -> Iterator[bytes]:
        """A file's content in blocks."""
        request = rq.file("GET", repo, ref, path)
        with translated_errors(self.server, request):
            answer = self._http.send(build(self._http, request), stream=True)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, answer.read())
                yield from answer.iter_bytes()
            finally:
                answer.close()

    def delete_file(
        self, repo: str, branch: str, path: str, commit_id: str | None = None
    ) -> dict[str, Any]:
        return self._object(rq.file("DELETE", repo, branch, path, commit_id))

    def list_files(self, repo: str, ref: str, path: str = "/") -> builtins.list[dict[str, Any]]:
        return self._items(rq.commit(repo, ref, "/files", {"path": path}))

    def glob_files(self, repo: str, ref: str, pattern: str) -> builtins.list[dict[str, Any]]:
        return self._items(rq.commit(repo, ref, "/glob", {"pattern": pattern}))

    def lineage(self, repo: str, ref: str, path: str) -> dict[str, Any]:
        """The file and, recursively, the input files it was made from (``inputs``)."""
        answer = self._object(rq.commit(repo, ref, "/lineage", {"path": path}))
        return dict(answer.get("root") or {})

    # ---- jobs --------------------------------------------------------------------------------

    def list_jobs(
        self, pipeline: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Newest first."""
        return self._items(rq.list_jobs(pipeline, limit))

    def inspect_job(self, job_id: str) -> dict[str, Any]:
        return self._object(rq.job(job_id))

    def list_datums(self, job_id: str, limit: int | None = None) -> builtins.list[dict[str, Any]]:
        params = {"limit": str(limit)} if limit is not None else {}
        return self._items(rq.job(job_id, "/datums", params))

    def job_logs(self, job_id: str, datum: str | None = None) -> Iterator[str]:
        """Lines of the logs of a job's datums."""
        request = rq.job(job_id, "/logs", {"datum": datum} if datum else {})
        with translated_errors(self.server, request):
            answer = self._http.send(build(self._http, request), stream=True)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, answer.read())
                yield from answer.iter_lines()
            finally:
                answer.close()

    def wait_pipelines(
        self, names: builtins.list[str], namespace: str | None = None, timeout_s: float = 60.0
    ) -> bool:
        """True once the pipelines (all when none is named) and those upstream of them have
        processed every input commit; False at the timeout."""
        request = rq.wait_pipelines(names, namespace or self.namespace, timeout_s)
        http_request = build(self._http, request)
        http_request.extensions["timeout"] = watch_timeout(self.settings).as_dict()
        http_request.extensions["timeout"]["read"] = timeout_s + self.settings.timeout_s
        with translated_errors(self.server, request):
            answer = self._http.send(http_request)
        return bool(self._decode_object(request, answer.status_code, answer.content)["settled"])

    # ---- workflows -------------------------------------------------------------------------

    def start_workflow_run(
        self, name: str, params: dict[str, str], namespace: str | None = None
    ) -> dict[str, Any]:
        """Start a run of workflow ``name``; the ``WorkflowRun`` object."""
        return self._object(rq.start_workflow_run(name, namespace or self.namespace, params))

    def wait_workflow_run(
        self, run: str, namespace: str | None = None, timeout_s: float = 60.0
    ) -> tuple[bool, dict[str, Any]]:
        """``(ended, the run)`` once the run ended, or at the timeout."""
        request = rq.wait_workflow_run(run, namespace or self.namespace, timeout_s)
        http_request = build(self._http, request)
        http_request.extensions["timeout"] = watch_timeout(self.settings).as_dict()
        http_request.extensions["timeout"]["read"] = timeout_s + self.settings.timeout_s
        with translated_errors(self.server, request):
            answer = self._http.send(http_request)
        body = self._decode_object(request, answer.status_code, answer.content)
        return bool(body["done"]), dict(body["run"])
