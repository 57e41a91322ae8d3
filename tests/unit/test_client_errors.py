"""Error answers become the edgeweave exception of their reason; transport failures too."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from edgeweave.client.config import ClientConfig
from edgeweave.client.http import Client
from edgeweave.errors import (
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InvalidObject,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthorized,
    UnknownKind,
)

CONFIG = ClientConfig(server="https://cloud.test", token="ew_t", insecure_skip_tls_verify=True)
DISCOVERY = {
    "kinds": [
        {
            "kind": "App",
            "group": "edgeweave.io",
            "version": "v1",
            "plural": "apps",
            "singular": "app",
            "shortNames": ["ap"],
            "namespaced": True,
        },
    ]
}


def _client(status: int, body: Any, seen: list[httpx.Request] | None = None) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/apis":
            return httpx.Response(200, json=DISCOVERY)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return Client(CONFIG, transport=httpx.MockTransport(handler))


def _status(code: int, reason: str, message: str = "m", **details: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details,
    }


@pytest.mark.parametrize(
    ("code", "reason", "cls"),
    [
        (400, "BadRequest", BadRequest),
        (400, "UnknownKind", UnknownKind),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", AlreadyExists),
        (409, "Conflict", Conflict),
        (410, "Gone", Gone),
        (413, "RequestEntityTooLarge", PayloadTooLarge),
        (503, "ServiceUnavailable", StoreUnavailable),
    ],
)
def test_reason_maps_to_its_class(code: int, reason: str, cls: type[Exception]) -> None:
    with (
        _client(code, _status(code, reason, "apps default/x: boom")) as client,
        pytest.raises(cls) as info,
    ):
        client.get("apps", "x")
    assert type(info.value) is cls
    assert "boom" in str(info.value)


def test_invalid_keeps_field_and_every_error() -> None:
    body = _status(
        422,
        "Invalid",
        "App default/x is invalid",
        field="spec.lifecycle.run",
        errors=["spec.lifecycle.run: must be a list", "spec.env: bad"],
    )
    with (
        _client(422, body) as client,
        pytest.raises(InvalidObject) as info,
    ):
        client.create({"apiVersion": "edgeweave.io/v1", "kind": "App", "metadata": {"name": "x"}})
    assert info.value.field == "spec.lifecycle.run"
    assert info.value.errors == ["spec.lifecycle.run: must be a list", "spec.env: bad"]


def test_unauthorized_says_401() -> None:
    with (
        _client(401, _status(401, "Unauthorized", "wrong bearer token")) as client,
        pytest.raises(Unauthorized, match=r"Unauthorized \(HTTP 401\): wrong bearer token"),
    ):
        client.list("apps")


def test_unknown_reason_and_non_json_become_api_error() -> None:
    with (
        _client(418, _status(418, "Teapot", "short and stout")) as client,
        pytest.raises(APIError) as info,
    ):
        client.get("app", "x")
    assert (info.value.status, info.value.api_reason) == (418, "Teapot")
    with (
        _client(502, b"<html>bad gateway</html>") as client,
        pytest.raises(APIError, match="HTTP 502: <html>bad gateway"),
    ):
        client.get("app", "x")


def test_unknown_kind_names_the_known_kinds() -> None:
    with (
        _client(200, {}) as client,
        pytest.raises(UnknownKind, match="known kinds: apps"),
    ):
        client.get("widgets", "x")


def test_network_failure_names_the_cloud() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Client(CONFIG, transport=httpx.MockTransport(handler)) as client,
        pytest.raises(APIError, match=r"cannot reach the cloud at https://cloud\.test") as info,
    ):
        client.discover()
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_requests_carry_the_token_and_documented_paths() -> None:
    seen: list[httpx.Request] = []
    with _client(200, {"items": [], "metadata": {}}, seen) as client:
        client.list("ap", "prod", selector="role=camera", limit=5)
        client.list("App", None)
    assert seen[1].headers["Authorization"] == "Bearer ew_t"
    assert seen[1].url.path == "/apis/edgeweave.io/v1/namespaces/prod/apps"
    assert dict(seen[1].url.params) == {"labelSelector": "role=camera", "limit": "5"}
    assert seen[2].url.path == "/apis/edgeweave.io/v1/apps"
    assert sum(r.url.path == "/apis" for r in seen) == 1  # discovery is cached


def test_bad_selector_fails_before_sending() -> None:
    with (
        _client(200, {}) as client,
        pytest.raises(BadRequest, match="label selector"),
    ):
        client.list("apps", "default", selector="a in (b")


def test_watch_yields_events_and_maps_error_events() -> None:
    lines = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "3"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "4"}}},
        {"type": "ERROR", "object": _status(410, "Gone", "too old")},
    ]
    body = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
    seen: list[httpx.Request] = []
    with _client(200, body, seen) as client:
        events = client.watch("apps", "default", resource_version="2")
        assert next(events)["object"]["metadata"]["name"] == "a"
        assert next(events)["type"] == "BOOKMARK"
        with pytest.raises(Gone, match="too old"):
            next(events)
    assert dict(seen[-1].url.params) == {"watch": "true", "resourceVersion": "2"}


async def test_async_client_maps_errors_and_streams_events_the_same_way() -> None:
    from edgeweave.client.async_http import AsyncClient

    event = {"type": "ADDED", "object": {"metadata": {"name": "a"}}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/apis":
            return httpx.Response(200, json=DISCOVERY)
        if request.url.params.get("watch") == "true":
            return httpx.Response(200, content=(json.dumps(event) + "\n").encode())
        return httpx.Response(404, json=_status(404, "NotFound", "apps default/x not found"))

    async with AsyncClient(CONFIG, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(NotFound, match="not found"):
            await client.get("apps", "x")
        events = [e async for e in client.watch("apps", "default")]
    assert events == [event]
