"""Repos, commits, files and lineage over HTTP (``/api/v1/pfs/...``; docs/api.md, "Pipelines").

- ``GET|POST /api/v1/pfs/repos`` (``{name, description?, node?}``: with ``node``, the repo lives
  on that node), ``GET|DELETE /api/v1/pfs/repos/{repo}``;
- ``GET .../repos/{repo}/commits?branch=&limit=``, ``GET .../commits/{ref}`` (a branch name or
  a commit id), ``POST .../repos/{repo}/branches/{branch}/commits`` (open a commit for several
  puts), ``POST .../commits/{id}/finish``;
- ``GET .../commits/{ref}/files?path=/dir``, ``GET .../commits/{ref}/glob?pattern=/*``,
  ``GET .../commits/{ref}/lineage?path=/a.txt``;
- ``PUT /api/v1/pfs/files/{repo}/{branch}?path=/a.txt[&commit=ID]``: the body, streamed to a
  temp file under the size limit ``pipelines.max_file_bytes`` (the generic JSON body limit
  does not apply under ``/api/v1/pfs/files/``), becomes a new commit — or goes into the open
  commit ``ID``; ``GET /api/v1/pfs/files/{repo}/{ref}?path=`` streams a file back;
  ``DELETE`` of the same path deletes a file or a directory in a new commit.

Admin only. Must not buffer a whole file in memory or know how pipelines are scheduled.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from edgeweave.cloud.api.bodies import int_param, json_response, read_json_object
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.pipelines import PipelineService
from edgeweave.cloud.pipelines.service import CommitView
from edgeweave.errors import BadRequest, InvalidObject
from edgeweave.pipelines.commits import CommitInfo, FileInfo, RepoInfo

FILES_PREFIX = "/api/v1/pfs/files/"
REPOS = "/api/v1/pfs/repos"
MAX_LIST = 10_000


def repo_json(info: RepoInfo, node: str | None = None) -> dict[str, Any]:
    return {
        "name": info.name,
        "description": info.description,
        "createdAt": info.created_at,
        "branches": info.branches,
        "location": {"node": node} if node else "cloud",
    }


def commit_json(info: CommitInfo, view: CommitView | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": info.id,
        "repo": info.repo,
        "branch": info.branch,
        "parent": info.parent,
        "origin": info.origin,
        "createdAt": info.created_at,
        "finishedAt": info.finished_at,
        "description": info.description,
        "provenance": list(info.provenance),
    }
    if view is not None:
        out.update(files=view.files, sizeBytes=view.size_bytes, job=view.job)
    return out


def file_json(info: FileInfo) -> dict[str, Any]:
    kind = "dir" if info.is_dir else "file"
    return {"path": info.path, "type": kind, "size": info.size, "digest": info.digest or None}


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadRequest(f"the query parameter {name!r} is required")
    return value


def build_pfs_router(service: PipelineService) -> APIRouter:
    r = APIRouter(tags=["pipelines"])

    @r.get(REPOS, summary="List repos (sizeBytes: of the master branch's head)")
    async def list_repos(request: Request) -> Response:
        require_admin(request)
        items = []
        for info in await service.repos.repo_infos():
            item = repo_json(info, service.location(info.name))
            head = info.branches.get("master")
            item["sizeBytes"] = (await service.repos.commit_stats(head))[1] if head else 0
            items.append(item)
        return json_response({"kind": "RepoList", "items": items})

    @r.post(REPOS, summary="Create a repo: {name, description?}", status_code=201)
    async def create_repo(request: Request) -> Response:
        require_admin(request)
        body = await read_json_object(request)
        name, description = body.get("name"), body.get("description") or ""
        node = body.get("node")
        if not isinstance(name, str) or not isinstance(description, str):
            raise BadRequest('send {"name": "images", "description": "...", "node": "node-a"}')
        if node is not None and (not isinstance(node, str) or not node):
            raise InvalidObject("node: a node name, or absent for a cloud repo", field="node")
        info = await service.create_repo(name, description, node)
        return json_response(repo_json(info, service.location(name)), 201)

    @r.get(REPOS + "/{repo}", summary="A repo and its branches")
    async def get_repo(request: Request, repo: str) -> Response:
        require_admin(request)
        return json_response(repo_json(await service.repo(repo), service.location(repo)))

    @r.delete(REPOS + "/{repo}", summary="Delete a repo no pipeline uses, and free its space")
    async def delete_repo(request: Request, repo: str) -> Response:
        require_admin(request)
        await service.delete_repo(repo)
        return json_response({"deleted": repo})

    @r.get(REPOS + "/{repo}/commits", summary="Commits of a repo, newest first")
    async def list_commits(request: Request, repo: str) -> Response:
        require_admin(request)
        branch = request.query_params.get("branch") or None
        commits = (await service.repos.list_commits(repo, branch))[
            : int_param(request, "limit", 100, 1, MAX_LIST)
        ]
        return json_response({"kind": "CommitList", "items": [commit_json(c) for c in commits]})

    @r.get(REPOS + "/{repo}/commits/{ref}", summary="A commit (by id, or a branch's head)")
    async def inspect_commit(request: Request, repo: str, ref: str) -> Response:
        require_admin(request)
        view = await service.commit(repo, ref)
        return json_response(commit_json(view.info, view))

    @r.post(REPOS + "/{repo}/branches/{branch}/commits", summary="Open a commit", status_code=201)
    async def start_commit(request: Request, repo: str, branch: str) -> Response:
        require_admin(request)
        raw = await request.body()
        body = await read_json_object(request) if raw else {}
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest("description must be a string")
        return json_response(
            commit_json(await service.start_commit(repo, branch, description)), 201
        )

    @r.post(REPOS + "/{repo}/commits/{commit}/finish", summary="Finish an open commit")
    async def finish_commit(request: Request, repo: str, commit: str) -> Response:
        require_admin(request)
        return json_response(commit_json(await service.finish_commit(repo, commit)))

    @r.get(REPOS + "/{repo}/commits/{ref}/files", summary="Entries of a directory: ?path=/dir")
    async def list_files(request: Request, repo: str, ref: str) -> Response:
        require_admin(request)
        path = request.query_params.get("path") or "/"
        info, found = await service.list_files(repo, ref, path)
        items = [file_json(f) for f in found[: int_param(request, "limit", MAX_LIST, 1, MAX_LIST)]]
        return json_response({"kind": "FileList", "commit": info.id, "items": items})

    @r.get(REPOS + "/{repo}/commits/{ref}/glob", summary="Files matching ?pattern=/*")
    async def glob_files(request: Request, repo: str, ref: str) -> Response:
        require_admin(request)
        info = await service.repos.resolve(repo, ref)
        found = await service.repos.glob_files(info.id, _required(request, "pattern"))
        items = [file_json(f) for f in found[: int_param(request, "limit", MAX_LIST, 1, MAX_LIST)]]
        return json_response({"kind": "FileList", "commit": info.id, "items": items})

    @r.get(REPOS + "/{repo}/commits/{ref}/lineage", summary="Where a file came from: ?path=")
    async def lineage(request: Request, repo: str, ref: str) -> Response:
        require_admin(request)
        node = await service.lineage(repo, ref, _required(request, "path"))
        return json_response({"kind": "Lineage", "root": node.as_json()})

    @r.put(FILES_PREFIX + "{repo}/{branch}", summary="Put a file (?path=, ?commit=); streamed")
    async def put_file(request: Request, repo: str, branch: str) -> Response:
        require_admin(request)
        path = _required(request, "path")
        commit = request.query_params.get("commit") or None
        info, put = await service.put_stream(repo, branch, path, request.stream(), commit)
        return json_response({"commit": commit_json(info), "file": file_json(put)}, 201)

    @r.get(FILES_PREFIX + "{repo}/{ref}", summary="A file's content: ?path=")
    async def get_file(request: Request, repo: str, ref: str) -> Response:
        require_admin(request)
        found, chunks = await service.open_file(repo, ref, _required(request, "path"))
        headers = {"Content-Length": str(found.size), "ETag": f'"sha256:{found.digest}"'}
        return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)

    @r.delete(FILES_PREFIX + "{repo}/{branch}", summary="Delete a file or directory: ?path=")
    async def delete_file(request: Request, repo: str, branch: str) -> Response:
        require_admin(request)
        path = _required(request, "path")
        commit = request.query_params.get("commit") or None
        info, count = await service.delete_file(repo, branch, path, commit)
        return json_response({"commit": commit_json(info), "deleted": count})

    return r
