"""A Device's twins over HTTP: read the twin view, set desired values, read reported history.

- ``GET  /apis/devices.kubeedge.io/v1beta1/namespaces/{ns}/devices/{name}/twin`` → the view
  of :func:`edgeweave.cloud.twins.twin_view` (per property: type, access mode, desired,
  reported, reportedAt, observedDesired; the device's state and lastOnlineTime);
- ``PUT`` or ``PATCH`` of the same path with ``{"desired": {"PROP": "VALUE" | null, ...}}``
  (optionally ``"resourceVersion"`` to make it conditional) → checks every value against the
  DeviceModel (400 naming the property when it is unknown, ReadOnly or does not parse), writes
  ``spec.properties[].desired.value`` with compare-and-set (retried on a concurrent write unless
  the caller named a version), answers the new view. The Device's node gets the change through
  the normal downstream sync.
- ``GET .../devices/{name}/twinhistory?property=P&since=MS&limit=N`` → ``{"items": [{"property",
  "value", "timestamp"}]}``, oldest first (the newest ``limit``); 404 for an unknown device.

Admin only, bodies bounded by the API's body limit. Must not write anything but a Device's
desired values, nor touch ``status`` (nodes report it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import int_param, json_response, read_json_object
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.store.base import JSONObject, Store
from edgeweave.cloud.twins import (
    DEVICE,
    DEVICE_MODEL,
    desired_problems,
    model_name,
    twin_view,
    with_desired,
)
from edgeweave.errors import BadRequest, Conflict, NotFound

DEVICE_PATH = "/apis/devices.kubeedge.io/v1beta1/namespaces/{namespace}/devices/{name}"
CAS_ATTEMPTS = 8
MAX_PROPERTIES = 1024
MAX_VALUE_CHARS = 512
MAX_HISTORY_LIMIT = 10_000
_PROPERTY_RE = re.compile(r"[a-zA-Z0-9_.,:/@#-]{1,128}")
_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


class TwinHistory(Protocol):
    async def list_twin_history(
        self,
        namespace: str,
        name: str,
        property: str | None = None,
        *,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[JSONObject]: ...


@dataclass(frozen=True)
class TwinDeps:
    store: Store  # Devices and DeviceModels
    history: TwinHistory


def _desired_of(body: dict[str, Any]) -> dict[str, str | None]:
    desired = body.get("desired")
    if not isinstance(desired, dict) or not desired:
        raise BadRequest('send {"desired": {"PROPERTY": "VALUE", ...}} with at least one property')
    if len(desired) > MAX_PROPERTIES:
        raise BadRequest(f"at most {MAX_PROPERTIES} properties per request")
    out: dict[str, str | None] = {}
    for prop, value in desired.items():
        if _PROPERTY_RE.fullmatch(prop) is None:
            raise BadRequest(
                f"property name {prop[:40]!r} is invalid: use 1 to 128 of "
                "a-z A-Z 0-9 - _ . , : / @ #"
            )
        if value is not None and not isinstance(value, str):
            raise BadRequest(
                f"desired value of property {prop!r} must be a string (KubeEdge values are "
                f'strings: "21", "true") or null to clear it'
            )
        if value is not None and len(value) > MAX_VALUE_CHARS:
            raise BadRequest(
                f"desired value of property {prop!r} is longer than {MAX_VALUE_CHARS} characters"
            )
        out[prop] = value
    return out


def _expected_rv(body: dict[str, Any]) -> str | None:
    rv = body.get("resourceVersion")
    if rv is None:
        return None
    if not isinstance(rv, str | int) or isinstance(rv, bool) or not str(rv).isdigit():
        raise BadRequest("resourceVersion must be a non-negative integer (as a string)")
    return str(rv)


class TwinHandlers:
    def __init__(self, deps: TwinDeps) -> None:
        self.store = deps.store
        self.history = deps.history

    async def _model(self, device: JSONObject, namespace: str) -> JSONObject | None:
        name = model_name(device)
        if name is None:
            return None
        try:
            return await self.store.get(DEVICE_MODEL, namespace, name)
        except NotFound:
            return None

    async def get_twin(self, request: Request, namespace: str, name: str) -> Response:
        """The twin view of a Device."""
        require_admin(request)
        device = await self.store.get(DEVICE, namespace, name)
        return json_response(twin_view(device, await self._model(device, namespace)))

    async def set_twin(self, request: Request, namespace: str, name: str) -> Response:
        """Set desired values: ``{"desired": {"PROP": "VALUE", ...}, "resourceVersion"?}``."""
        require_admin(request)
        body = await read_json_object(request)
        values = _desired_of(body)
        expected = _expected_rv(body)
        for _ in range(CAS_ATTEMPTS):
            device = await self.store.get(DEVICE, namespace, name)
            model = await self._model(device, namespace)
            problems = desired_problems(device, model, values)
            if problems:
                raise BadRequest(f"Device {namespace}/{name}: " + "; ".join(problems))
            updated = with_desired(device, values)
            updated["metadata"]["resourceVersion"] = (
                expected or device["metadata"]["resourceVersion"]
            )
            try:
                stored = await self.store.update(updated)
            except Conflict:
                if expected is not None:
                    raise
                continue
            return json_response(twin_view(stored, model))
        raise Conflict(f"devices {namespace}/{name}: too many concurrent writers; retry")

    async def twin_history(self, request: Request, namespace: str, name: str) -> Response:
        """Reported values, oldest first: ``?property=P&since=MS&limit=N`` (default 1000)."""
        require_admin(request)
        prop = request.query_params.get("property") or None
        if prop is not None and _PROPERTY_RE.fullmatch(prop) is None:
            raise BadRequest(f"property {prop[:40]!r} is not a property name")
        since = int_param(request, "since", None, 0, 2**63 - 1)
        limit = int_param(request, "limit", 1000, 1, MAX_HISTORY_LIMIT)
        await self.store.get(DEVICE, namespace, name)  # 404 for an unknown device
        items = await self.history.list_twin_history(
            namespace, name, prop, since_ms=since, limit=limit
        )
        return json_response({"kind": "TwinHistory", "items": items})


def build_twins_router(deps: TwinDeps) -> APIRouter:
    h = TwinHandlers(deps)
    r = APIRouter()
    r.add_api_route(
        DEVICE_PATH + "/twin", h.get_twin, methods=["GET"], tags=["devices"],
        summary="A Device's twins: desired, reported and observed values per property",
    )  # fmt: skip
    for method in ("PUT", "PATCH"):
        r.add_api_route(
            DEVICE_PATH + "/twin", h.set_twin, methods=[method], tags=["devices"],
            summary="Set desired values of a Device's properties (checked against its model)",
            openapi_extra={"requestBody": _BODY}, name=f"set_twin_{method.lower()}",
        )  # fmt: skip
    r.add_api_route(
        DEVICE_PATH + "/twinhistory", h.twin_history, methods=["GET"], tags=["devices"],
        summary="Reported values of a Device's properties over time",
    )  # fmt: skip
    return r
