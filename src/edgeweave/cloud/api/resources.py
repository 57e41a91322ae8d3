"""Create, read, list, update, patch and delete for every registered kind.

Handlers resolve the kind from the path, validate bodies with the kind's model, and call the
store. They never build paths or parse references by hand beyond the route parameters.
Watch streaming lives in :mod:`.watch`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response, read_json_object
from edgeweave.cloud.api.deps import ApiDeps
from edgeweave.cloud.api.watch import watch_response
from edgeweave.cloud.pipelines.mergespec import check_merger
from edgeweave.cloud.store.base import JSONObject, WatchFilter
from edgeweave.errors import BadRequest, Conflict, Forbidden, InvalidObject, NotFound
from edgeweave.models import registry
from edgeweave.models.devices import validate_device_against_model
from edgeweave.models.kinds import KindInfo
from edgeweave.models.patch import merge_patch
from edgeweave.models.pipelines import Input
from edgeweave.models.selectors import LabelSelector
from edgeweave.pipelines.dagspec import checked_workflow
from edgeweave.pipelines.spec import check_filter, check_input

PATCH_RETRIES = 8
_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_LIST_QUERY = [
    {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
    for n, t, d in [
        ("labelSelector", "string", "key=value, key!=value, key in (a,b), key, !key"),
        ("limit", "integer", "page size (default 500, at most 5000)"),
        ("continue", "string", "token from the previous page"),
        ("watch", "boolean", "stream changes as NDJSON instead of listing"),
        ("resourceVersion", "string", "watch: start after this version (default: now)"),
        ("bookmarkSeconds", "number", "watch: idle seconds between BOOKMARK events"),
    ]
]


def _kind(group: str, version: str, plural: str) -> KindInfo:
    return registry.by_plural(group, version, plural)


def _parse_rv(value: str | None, what: str = "resourceVersion") -> int | None:
    if value is None or value == "":
        return None
    try:
        rv = int(value)
    except ValueError as e:
        raise BadRequest(f"{what} must be a non-negative integer, got {value!r}") from e
    if rv < 0:
        raise BadRequest(f"{what} must be a non-negative integer, got {value!r}")
    return rv


def _writable(info: KindInfo) -> KindInfo:
    if info.read_only:
        raise Forbidden(
            f"{info.kind} objects are kept by the cloud and cannot be written through the API; "
            "change the objects they are derived from instead"
        )
    return info


@dataclass(frozen=True)
class Target:
    """What a request's path names: a kind, maybe a namespace, maybe one object."""

    info: KindInfo
    namespace: str | None  # None: the path has no namespace segment
    name: str | None

    @classmethod
    def of(cls, request: Request) -> Target:
        p = request.path_params
        return cls(_kind(p["group"], p["version"], p["plural"]), p.get("namespace"), p.get("name"))

    @property
    def store_namespace(self) -> str:
        """The namespace of one object; refuses a path of the wrong scope."""
        info = self.info
        if info.namespaced and self.namespace is None:
            raise BadRequest(
                f"{info.kind} is namespaced: use "
                f"/apis/{info.api_version}/namespaces/NAMESPACE/{info.plural}/NAME"
            )
        if not info.namespaced and self.namespace is not None:
            raise BadRequest(
                f"{info.kind} is cluster-scoped: use /apis/{info.api_version}/{info.plural}/NAME"
            )
        return self.namespace or ""

    @property
    def object_name(self) -> str:
        assert self.name is not None  # only object routes call this
        return self.name


class ResourceHandlers:
    def __init__(self, deps: ApiDeps) -> None:
        self.deps = deps
        self.store = deps.store

    async def _validated(self, info: KindInfo, body: JSONObject, namespace: str) -> JSONObject:
        kind = body.get("kind")
        if kind is not None and kind != info.kind:
            raise BadRequest(f"body kind {kind!r} does not match the path's {info.kind!r}")
        body.setdefault("kind", info.kind)
        body.setdefault("apiVersion", info.api_version)
        meta = body.get("metadata")
        if info.namespaced and isinstance(meta, dict):
            body_ns = meta.get("namespace")
            if body_ns not in (None, "", namespace):
                raise BadRequest(
                    f"metadata.namespace {body_ns!r} does not match the path's namespace "
                    f"{namespace!r}"
                )
            meta["namespace"] = namespace
        obj = registry.validate(body, default_namespace=namespace or "default")
        if info.kind == "Device":
            await self._check_device_model(obj)
        if info.kind == "Pipeline":
            _check_pipeline_input(obj)
        if info.kind == "Workflow":
            checked_workflow(obj, f"Workflow {obj['metadata'].get('name')}")  # the schedule
        return obj

    async def _check_device_model(self, device: JSONObject) -> None:
        ref = (device.get("spec") or {}).get("deviceModelRef") or {}
        model_name = ref.get("name")
        if not model_name:
            return  # the Device model reports the missing reference itself
        namespace = device["metadata"].get("namespace") or "default"
        try:
            model = await self.store.get("DeviceModel", namespace, model_name)
        except NotFound as e:
            raise InvalidObject(
                f"DeviceModel {model_name!r} not found in namespace {namespace!r}; "
                "apply the DeviceModel first",
                field="spec.deviceModelRef.name",
            ) from e
        validate_device_against_model(device, model)

    @staticmethod
    def _check_name(obj: JSONObject, name: str) -> None:
        body_name = (obj.get("metadata") or {}).get("name")
        if body_name != name:
            raise BadRequest(f"metadata.name {body_name!r} does not match the path's name {name!r}")

    async def create(self, request: Request) -> Response:
        t = Target.of(request)
        _writable(t.info)
        ns = t.store_namespace
        obj = await self._validated(t.info, await read_json_object(request), ns)
        return json_response(await self.store.create(obj), 201)

    async def get(self, request: Request) -> Response:
        t = Target.of(request)
        if request.query_params.get("watch"):
            return await self.list_or_watch(request)
        return json_response(await self.store.get(t.info.kind, t.store_namespace, t.object_name))

    async def list_or_watch(self, request: Request) -> Response:
        t = Target.of(request)
        info = t.info
        if not info.namespaced and t.namespace is not None:
            raise BadRequest(
                f"{info.kind} is cluster-scoped: use /apis/{info.api_version}/{info.plural}"
            )
        q = request.query_params
        selector = LabelSelector.parse(q.get("labelSelector"))
        if q.get("watch", "").lower() in ("1", "true", "yes"):
            flt = WatchFilter(info.kind, t.namespace, selector, t.name)
            since = _parse_rv(q.get("resourceVersion"))
            bookmark_s = _parse_float(q.get("bookmarkSeconds"), self.deps.settings.watch_bookmark_s)
            if not 0.05 <= bookmark_s <= 3600:
                raise BadRequest("bookmarkSeconds must be between 0.05 and 3600")
            return await watch_response(self.deps, flt, since, bookmark_s)
        if t.name is not None:
            raise BadRequest("add ?watch=true to watch one object, or GET without it to read it")
        limit = _parse_rv(q.get("limit"), "limit") or self.deps.settings.list_default_limit
        limit = min(limit, self.deps.settings.list_max_limit)
        result = await self.store.list(
            info.kind, t.namespace, selector, limit=limit, continue_token=q.get("continue") or None
        )
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        return json_response(
            {
                "apiVersion": info.api_version,
                "kind": f"{info.kind}List",
                "metadata": meta,
                "items": result.items,
            }
        )

    async def replace(self, request: Request) -> Response:
        t = Target.of(request)
        _writable(t.info)
        ns = t.store_namespace
        body = await read_json_object(request)
        self._check_name(body, t.object_name)
        obj = await self._validated(t.info, body, ns)
        return json_response(await self.store.update(obj))

    async def patch(self, request: Request) -> Response:
        return await self._patch(request, status_only=False)

    async def patch_status(self, request: Request) -> Response:
        return await self._patch(request, status_only=True)

    async def _patch(self, request: Request, *, status_only: bool) -> Response:
        t = Target.of(request)
        _writable(t.info)
        ns, name = t.store_namespace, t.object_name
        patch = await read_json_object(request)
        if status_only:
            patch = {"status": patch["status"]} if "status" in patch else {}
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        for _ in range(PATCH_RETRIES):
            current = await self.store.get(t.info.kind, ns, name)
            merged = merge_patch(current, patch)
            self._check_name(merged, name)
            # CAS against what we read (or what the caller named): a concurrent write → retry
            merged["metadata"]["resourceVersion"] = (
                wanted_rv or current["metadata"]["resourceVersion"]
            )
            obj = await self._validated(t.info, merged, ns)
            try:
                return json_response(await self.store.update(obj))
            except Conflict:
                if wanted_rv is not None:
                    raise
        raise Conflict(f"{t.info.plural} {ns}/{name}: too many concurrent writers; retry")

    async def replace_status(self, request: Request) -> Response:
        t = Target.of(request)
        _writable(t.info)
        body = await read_json_object(request)
        current = await self.store.get(t.info.kind, t.store_namespace, t.object_name)
        current["status"] = body.get("status")
        body_rv = (body.get("metadata") or {}).get("resourceVersion")
        if body_rv is not None:
            current["metadata"]["resourceVersion"] = body_rv
        return json_response(await self.store.update(current))

    async def delete(self, request: Request) -> Response:
        t = Target.of(request)
        _writable(t.info)
        rv = _parse_rv(request.query_params.get("resourceVersion"))
        deleted = await self.store.delete(
            t.info.kind, t.store_namespace, t.object_name, resource_version=rv
        )
        return json_response(deleted)


def _check_pipeline_input(obj: JSONObject) -> None:
    """What the model cannot check alone: globs compile, join_on/group_by read groups, a
    filter's drop codes."""
    try:
        check_input(Input.model_validate(obj["spec"]["input"]))
        pattern = obj["spec"].get("pattern")
        if isinstance(pattern, dict):
            check_filter(pattern.get("filter"))
            if "merger" in pattern:
                check_merger(pattern.get("merger"))
    except InvalidObject as e:
        raise InvalidObject(e.message, field=f"spec.{e.field}" if e.field else "") from None


def _parse_float(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return float(value)
    except ValueError as e:
        raise BadRequest(f"expected a number, got {value!r}") from e


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in re.findall(r"{(\w+)}", path)
    ]


def build_router(deps: ApiDeps) -> APIRouter:
    """Routes for every kind; the namespaced forms come first so they win on overlap."""
    h = ResourceHandlers(deps)
    r = APIRouter()
    ns_collection = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    collection = "/apis/{group}/{version}/{plural}"
    table = [
        ("GET", "", h.list_or_watch, "List or watch (?watch=true) objects of a kind", False),
        ("POST", "", h.create, "Create an object", True),
        ("PUT", "/{name}/status", h.replace_status, "Replace only the status of an object", True),
        ("PATCH", "/{name}/status", h.patch_status, "Merge-patch only the status", True),
        ("GET", "/{name}", h.get, "Read an object (or watch it with ?watch=true)", False),
        ("PUT", "/{name}", h.replace, "Replace (compare-and-set on resourceVersion)", True),
        ("PATCH", "/{name}", h.patch, "JSON merge patch (RFC 7386)", True),
        ("DELETE", "/{name}", h.delete, "Delete (conditional with ?resourceVersion=)", False),
    ]
    for base, scope in ((ns_collection, "in a namespace"), (collection, "cluster-wide")):
        for method, suffix, endpoint, summary, has_body in table:
            path = base + suffix
            extra: dict[str, Any] = {"parameters": _path_params(path)}
            if method == "GET" and suffix == "":
                extra["parameters"] += _LIST_QUERY
            if has_body:
                extra["requestBody"] = _BODY
            r.add_api_route(
                path,
                endpoint,
                methods=[method],
                summary=f"{summary} ({scope})",
                tags=["resources"],
                status_code=201 if method == "POST" else 200,
                openapi_extra=extra,
                name=f"{method.lower()}{suffix.replace('/', '_')}_{scope.split()[-1]}",
            )
    return r
