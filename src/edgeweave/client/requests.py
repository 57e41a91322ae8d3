"""The requests of the public API as data: method, path, query and body.

Both clients (sync and async) build their requests here so the paths exist in exactly one
place, written as docs/api.md draws them. Pure functions: nothing here sends anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeweave.client.discovery import KindRef
from edgeweave.errors import InvalidObject
from edgeweave.models.selectors import LabelSelector

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str = "application/json"


def object_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidObject(
            f"{obj.get('kind', 'object')} has no metadata.name", field="metadata.name"
        )
    return name


def object_namespace(ref: KindRef, obj: Mapping[str, Any], default: str) -> str | None:
    """The namespace an object goes to: its own, else ``default``; None if cluster-scoped."""
    if not ref.namespaced:
        return None
    meta = obj.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, Mapping) else None
    return ns if isinstance(ns, str) and ns else default


def with_namespace(obj: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
    """A shallow copy of ``obj`` whose metadata carries ``namespace`` (when namespaced)."""
    out = dict(obj)
    if namespace is not None:
        out["metadata"] = {**dict(obj.get("metadata") or {}), "namespace": namespace}
    return out


def create(ref: KindRef, obj: Mapping[str, Any], namespace: str | None) -> Request:
    object_name(obj)
    body = with_namespace(obj, namespace)
    return Request("POST", ref.collection_path(namespace), body=body)


def get(ref: KindRef, name: str, namespace: str | None) -> Request:
    return Request("GET", ref.object_path(name, namespace))


def list_(
    ref: KindRef,
    namespace: str | None,
    selector: str | None = None,
    limit: int | None = None,
    continue_: str | None = None,
) -> Request:
    params: dict[str, str] = {}
    if selector:
        params["labelSelector"] = str(LabelSelector.parse(selector))  # fail early, locally
    if limit is not None:
        params["limit"] = str(limit)
    if continue_:
        params["continue"] = continue_
    return Request("GET", ref.collection_path(namespace), params)


def update(ref: KindRef, obj: Mapping[str, Any], namespace: str | None) -> Request:
    name = object_name(obj)
    return Request("PUT", ref.object_path(name, namespace), body=with_namespace(obj, namespace))


def patch(ref: KindRef, name: str, namespace: str | None, body: Mapping[str, Any]) -> Request:
    return Request(
        "PATCH", ref.object_path(name, namespace), body=dict(body), content_type=MERGE_PATCH
    )


def delete(
    ref: KindRef, name: str, namespace: str | None, resource_version: str | None = None
) -> Request:
    params = {"resourceVersion": str(resource_version)} if resource_version else {}
    return Request("DELETE", ref.object_path(name, namespace), params)


def watch(
    ref: KindRef,
    namespace: str | None,
    resource_version: str | None = None,
    selector: str | None = None,
    name: str | None = None,
) -> Request:
    params = {"watch": "true"}
    if resource_version:
        params["resourceVersion"] = str(resource_version)
    if selector:
        params["labelSelector"] = str(LabelSelector.parse(selector))
    path = ref.object_path(name, namespace) if name else ref.collection_path(namespace)
    return Request("GET", path, params)


DEVICES_PATH = "/apis/devices.kubeedge.io/v1beta1/namespaces/{namespace}/devices/{name}"


def get_twin(namespace: str, name: str) -> Request:
    return Request("GET", DEVICES_PATH.format(namespace=namespace, name=name) + "/twin")


def set_twin(namespace: str, name: str, desired: Mapping[str, str | None]) -> Request:
    path = DEVICES_PATH.format(namespace=namespace, name=name) + "/twin"
    return Request("PUT", path, body={"desired": dict(desired)})


def twin_history(
    namespace: str,
    name: str,
    property_name: str | None = None,
    since_ms: int | None = None,
    limit: int | None = None,
) -> Request:
    params: dict[str, str] = {}
    if property_name:
        params["property"] = property_name
    if since_ms is not None:
        params["since"] = str(since_ms)
    if limit is not None:
        params["limit"] = str(limit)
    path = DEVICES_PATH.format(namespace=namespace, name=name) + "/twinhistory"
    return Request("GET", path, params)


# ---- pipelines: repos, commits, files (/api/v1/pfs) and jobs (/api/v1/pps) -------------------

PFS_REPOS = "/api/v1/pfs/repos"
PFS_FILES = "/api/v1/pfs/files"
PPS_JOBS = "/api/v1/pps/jobs"


def _q(value: str) -> str:
    """A path segment: repo, branch and commit names are safe, but keep it exact."""
    from urllib.parse import quote

    return quote(value, safe="")


def create_repo(name: str, description: str = "", node: str | None = None) -> Request:
    body: dict[str, Any] = {"name": name, "description": description}
    if node is not None:
        body["node"] = node  # the repo lives on that node
    return Request("POST", PFS_REPOS, body=body)


def repo(name: str, method: str = "GET") -> Request:
    return Request(method, f"{PFS_REPOS}/{_q(name)}")


def list_commits(repo: str, branch: str | None = None, limit: int | None = None) -> Request:
    params = {"branch": branch} if branch else {}
    if limit is not None:
        params["limit"] = str(limit)
    return Request("GET", f"{PFS_REPOS}/{_q(repo)}/commits", params)


def commit(repo: str, ref: str, suffix: str = "", params: dict[str, str] | None = None) -> Request:
    """``GET .../commits/{ref}{suffix}``: the commit, or its files, glob, lineage."""
    return Request("GET", f"{PFS_REPOS}/{_q(repo)}/commits/{_q(ref)}{suffix}", params or {})


def start_commit(repo: str, branch: str, description: str = "") -> Request:
    path = f"{PFS_REPOS}/{_q(repo)}/branches/{_q(branch)}/commits"
    return Request("POST", path, body={"description": description})


def finish_commit(repo: str, commit_id: str) -> Request:
    return Request("POST", f"{PFS_REPOS}/{_q(repo)}/commits/{_q(commit_id)}/finish")


def file(method: str, repo: str, ref: str, path: str, commit_id: str | None = None) -> Request:
    """``PUT|GET|DELETE /api/v1/pfs/files/{repo}/{ref}?path=`` (``ref``: a branch to write)."""
    params = {"path": path}
    if commit_id:
        params["commit"] = commit_id
    return Request(method, f"{PFS_FILES}/{_q(repo)}/{_q(ref)}", params)


def list_jobs(pipeline: str | None = None, limit: int | None = None) -> Request:
    params = {"pipeline": pipeline} if pipeline else {}
    if limit is not None:
        params["limit"] = str(limit)
    return Request("GET", PPS_JOBS, params)


def job(job_id: str, suffix: str = "", params: dict[str, str] | None = None) -> Request:
    """``GET /api/v1/pps/jobs/{job}{suffix}``: the job, its datums or its logs."""
    return Request("GET", f"{PPS_JOBS}/{_q(job_id)}{suffix}", params or {})


def wait_pipelines(names: list[str], namespace: str, timeout_s: float) -> Request:
    params = {"namespace": namespace, "timeoutSeconds": f"{timeout_s:g}"}
    if names:
        params["pipeline"] = ",".join(names)
    return Request("GET", "/api/v1/pps/wait", params)


def start_workflow_run(name: str, namespace: str, params: dict[str, str]) -> Request:
    return Request(
        "POST",
        f"/api/v1/pps/workflows/{_q(name)}/runs",
        {"namespace": namespace},
        body={"params": params},
    )


def wait_workflow_run(run: str, namespace: str, timeout_s: float) -> Request:
    params = {"namespace": namespace, "timeoutSeconds": f"{timeout_s:g}"}
    return Request("GET", f"/api/v1/pps/workflowruns/{_q(run)}/wait", params)
