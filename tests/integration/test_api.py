"""The HTTP API on a real uvicorn with TLS on port 0, against real SQLite (and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeweave.config.settings import ApiSettings
from edgeweave.testing.cloud import TestCloud, open_test_cloud

APPS = "/apis/edgeweave.io/v1/namespaces/default/apps"
NODES = "/apis/edgeweave.io/v1/nodes"
DEVICES_API = "/apis/devices.kubeedge.io/v1beta1/namespaces/default"


def app_manifest(name: str = "counter", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "labels": labels or {"tier": "edge"}},
        "spec": {
            "nodeSelector": {"role": "camera"},
            "lifecycle": {"run": ["python3", "counter.py"]},
        },
    }


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[TestCloud]:
    async with open_test_cloud(tmp_path / "cloud", api=ApiSettings(max_body_bytes=64 * 1024)) as c:
        yield c


async def test_healthz_needs_no_token(cloud: TestCloud) -> None:
    async with httpx.AsyncClient(verify=cloud.ssl_context()) as anon:
        r = await anon.get(cloud.url + "/healthz")
    assert r.status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
async def test_missing_or_wrong_token_gets_401(cloud: TestCloud, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(verify=cloud.ssl_context(), headers=headers) as anon:
        r = await anon.get(cloud.url + APPS)
    assert r.status_code == 401
    assert r.json()["reason"] == "Unauthorized"


async def test_server_certificate_is_signed_by_the_clouds_own_ca(cloud: TestCloud) -> None:
    assert cloud.url.startswith("https://")
    async with httpx.AsyncClient(verify=ssl.create_default_context()) as system_ca:
        with pytest.raises(httpx.ConnectError):
            await system_ca.get(cloud.url + "/healthz")
    plain = cloud.url.replace("https://", "http://")
    async with httpx.AsyncClient() as no_tls:
        with pytest.raises(httpx.HTTPError):
            await no_tls.get(plain + "/healthz")


async def test_create_get_list_update_delete_round_trip(cloud: TestCloud) -> None:
    http = cloud.http
    created = await http.post(APPS, json=app_manifest())
    assert created.status_code == 201, created.text
    obj = created.json()
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["generation"] == 1 and meta["uid"]
    got = (await http.get(f"{APPS}/counter")).json()
    assert got == obj
    listed = (await http.get(APPS)).json()
    assert listed["kind"] == "AppList" and [i["metadata"]["name"] for i in listed["items"]] == [
        "counter"
    ]
    assert int(listed["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])

    obj["spec"]["lifecycle"]["run"] = ["python3", "counter.py", "--fast"]
    updated = await http.put(f"{APPS}/counter", json=obj)
    assert updated.status_code == 200, updated.text
    assert updated.json()["metadata"]["generation"] == 2

    stale = await http.put(f"{APPS}/counter", json=obj)  # still carries the old resourceVersion
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"

    deleted = await http.delete(f"{APPS}/counter")
    assert deleted.status_code == 200
    missing = await http.get(f"{APPS}/counter")
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"


async def test_create_twice_is_already_exists(cloud: TestCloud) -> None:
    assert (await cloud.http.post(APPS, json=app_manifest())).status_code == 201
    again = await cloud.http.post(APPS, json=app_manifest())
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"


async def test_merge_patch_changes_only_named_fields(cloud: TestCloud) -> None:
    await cloud.http.post(APPS, json=app_manifest())
    r = await cloud.http.patch(
        f"{APPS}/counter",
        content=json.dumps(
            {"metadata": {"labels": {"tier": None, "team": "a"}}, "spec": {"env": {"X": "1"}}}
        ),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    obj = r.json()
    assert obj["metadata"]["labels"] == {"team": "a"}
    assert obj["spec"]["env"] == {"X": "1"} and obj["spec"]["lifecycle"]["run"] == [
        "python3",
        "counter.py",
    ]


async def test_list_filters_by_label_selector(cloud: TestCloud) -> None:
    for name, tier in [("a", "edge"), ("b", "cloud"), ("c", "edge")]:
        await cloud.http.post(APPS, json=app_manifest(name, {"tier": tier}))
    r = await cloud.http.get(APPS, params={"labelSelector": "tier=edge"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["a", "c"]
    r = await cloud.http.get(APPS, params={"labelSelector": "tier in (cloud)"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["b"]
    bad = await cloud.http.get(APPS, params={"labelSelector": "tier in (edge"})
    assert bad.status_code == 400 and bad.json()["reason"] == "BadRequest"


async def test_list_pages_with_limit_and_continue(cloud: TestCloud) -> None:
    for i in range(5):
        await cloud.http.post(APPS, json=app_manifest(f"app-{i}"))
    names: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await cloud.http.get(APPS, params=params)).json()
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        params = {"limit": 2, "continue": token}
    assert names == [f"app-{i}" for i in range(5)]


async def test_invalid_object_names_the_field(cloud: TestCloud) -> None:
    bad = app_manifest()
    bad["spec"]["lifecycle"]["run"] = "python3 counter.py"  # a shell string, not an argv list
    r = await cloud.http.post(APPS, json=bad)
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "Invalid"
    assert body["details"]["field"].startswith("spec.lifecycle.run")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[1,2]",
        b"null",
        b'"text"',
        b"\xff\xfe",
        b'{"kind": 5}',
        b'{"metadata": "x"}',
        b'{"apiVersion":"edgeweave.io/v1","kind":"App","metadata":{"name":"UPPER"}}',
        b'{"apiVersion":"edgeweave.io/v1","kind":"Service","metadata":{"name":"x"}}',
    ],
)
async def test_malformed_bodies_get_a_4xx_never_a_500(cloud: TestCloud, body: bytes) -> None:
    r = await cloud.http.post(APPS, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["reason"]


async def test_unknown_kind_and_route_are_clear_errors(cloud: TestCloud) -> None:
    r = await cloud.http.get("/apis/edgeweave.io/v1/namespaces/default/widgets")
    assert r.status_code == 400 and r.json()["reason"] == "UnknownKind"
    r = await cloud.http.get("/nope")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"


async def test_body_over_the_limit_gets_413(cloud: TestCloud) -> None:
    big = app_manifest()
    big["spec"]["env"] = {"PAD": "x" * 100_000}
    r = await cloud.http.post(APPS, json=big)
    assert r.status_code == 413 and r.json()["reason"] == "RequestEntityTooLarge"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
        for _ in range(100):
            yield b" " * 1024

    r = await cloud.http.post(APPS, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert (await cloud.http.get("/healthz")).status_code == 200  # still up


async def test_cluster_scoped_nodes_live_outside_namespaces(cloud: TestCloud) -> None:
    node = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Node",
        "metadata": {"name": "edge-1", "labels": {"role": "camera"}},
    }
    r = await cloud.http.post(NODES, json=node)
    assert r.status_code == 201, r.text
    assert not r.json()["metadata"].get("namespace")
    assert (await cloud.http.get(f"{NODES}/edge-1")).status_code == 200
    r = await cloud.http.put(f"{NODES}/edge-1/status", json={"status": {"phase": "Ready"}})
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Ready"
    wrong = await cloud.http.get("/apis/edgeweave.io/v1/namespaces/default/nodes/edge-1")
    assert wrong.status_code == 400


async def _read_events(stream: httpx.Response, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for line in stream.aiter_lines():
        if not line:
            continue
        event = json.loads(line)
        if event["type"] != "BOOKMARK":
            events.append(event)
        if len(events) == count:
            break
    return events


async def test_watch_streams_changes_and_resumes_from_a_version(cloud: TestCloud) -> None:
    start = (await cloud.http.get(APPS)).json()["metadata"]["resourceVersion"]
    async with cloud.http.stream(
        "GET", APPS, params={"watch": "true", "resourceVersion": start}
    ) as stream:
        assert stream.status_code == 200
        reader = asyncio.create_task(_read_events(stream, 3))
        created = (await cloud.http.post(APPS, json=app_manifest())).json()
        await cloud.http.patch(f"{APPS}/counter", json={"spec": {"env": {"A": "1"}}})
        await cloud.http.delete(f"{APPS}/counter")
        events = await asyncio.wait_for(reader, 10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["uid"] == created["metadata"]["uid"]

    resume_from = events[0]["object"]["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": resume_from}
    async with cloud.http.stream("GET", APPS, params=params) as stream:
        replayed = await asyncio.wait_for(_read_events(stream, 2), 10)
    assert [e["type"] for e in replayed] == ["MODIFIED", "DELETED"]


async def test_watch_sends_bookmarks_when_idle(cloud: TestCloud) -> None:
    params = {"watch": "true", "bookmarkSeconds": "0.1"}
    async with cloud.http.stream("GET", APPS, params=params) as stream:

        async def first_line() -> dict[str, Any]:
            async for line in stream.aiter_lines():
                return dict(json.loads(line))
            raise AssertionError("stream ended")

        event = await asyncio.wait_for(first_line(), 10)
    assert event["type"] == "BOOKMARK" and "resourceVersion" in event["object"]["metadata"]


async def test_watch_from_a_compacted_version_is_gone(cloud: TestCloud) -> None:
    for i in range(5):
        await cloud.http.post(APPS, json=app_manifest(f"a{i}"))
    oldest = await _compact(cloud, keep_last=1)
    r = await cloud.http.get(APPS, params={"watch": "true", "resourceVersion": str(oldest - 2)})
    assert r.status_code == 410 and r.json()["reason"] == "Gone"


async def _compact(cloud: TestCloud, keep_last: int) -> int:
    from edgeweave.cloud.store.factory import open_store

    store = await open_store("", cloud.admin_config.parent)
    try:
        return await store.compact(keep_last)
    finally:
        await store.aclose()


async def test_openapi_document_lists_the_resource_paths(cloud: TestCloud) -> None:
    doc = (await cloud.http.get("/openapi.json")).json()
    assert "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}" in doc["paths"]
    kinds = (await cloud.http.get("/apis")).json()["kinds"]
    assert {"Device", "DeviceModel", "App", "Node", "Service"} <= {k["kind"] for k in kinds}


KUBEEDGE_MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "thermostat-model", "namespace": "default"},
    "spec": {
        "protocol": "modbus",
        "properties": [
            {
                "name": "temperature",
                "description": "room temperature",
                "type": "FLOAT",
                "accessMode": "ReadOnly",
                "minimum": "-40",
                "maximum": "80",
                "unit": "celsius",
            },
            {
                "name": "target",
                "type": "INT",
                "accessMode": "ReadWrite",
                "minimum": "5",
                "maximum": "35",
            },
        ],
    },
}


def kubeedge_device(target_value: str = "21") -> dict[str, Any]:
    return {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "thermostat-1", "namespace": "default", "labels": {"room": "101"}},
        "spec": {
            "deviceModelRef": {"name": "thermostat-model"},
            "nodeName": "edge-1",
            "protocol": {
                "protocolName": "modbus",
                "configData": {"ip": "127.0.0.1", "port": 5020, "slaveID": 1},
            },
            "properties": [
                {
                    "name": "temperature",
                    "collectCycle": 1000,
                    "reportCycle": 1000,
                    "reportToCloud": True,
                    "visitors": {
                        "protocolName": "modbus",
                        "configData": {
                            "register": "InputRegister",
                            "offset": 0,
                            "limit": 1,
                            "scale": 0.1,
                        },
                    },
                },
                {
                    "name": "target",
                    "desired": {"value": target_value},
                    "visitors": {
                        "protocolName": "modbus",
                        "configData": {
                            "register": "HoldingRegister",
                            "offset": 1,
                            "limit": 1,
                            "scale": 1,
                        },
                    },
                },
            ],
        },
    }


async def test_kubeedge_device_manifests_are_accepted_unchanged(cloud: TestCloud) -> None:
    r = await cloud.http.post(f"{DEVICES_API}/devicemodels", json=KUBEEDGE_MODEL)
    assert r.status_code == 201, r.text
    device = kubeedge_device()
    r = await cloud.http.post(f"{DEVICES_API}/devices", json=device)
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["spec"]["properties"] == device["spec"]["properties"]
    assert stored["spec"]["protocol"] == device["spec"]["protocol"]


async def test_device_desired_value_must_parse_as_the_model_type(cloud: TestCloud) -> None:
    await cloud.http.post(f"{DEVICES_API}/devicemodels", json=KUBEEDGE_MODEL)
    r = await cloud.http.post(f"{DEVICES_API}/devices", json=kubeedge_device("warm"))
    assert r.status_code == 422, r.text
    assert "target" in r.json()["message"]


async def test_device_with_unknown_model_names_it(cloud: TestCloud) -> None:
    r = await cloud.http.post(f"{DEVICES_API}/devices", json=kubeedge_device())
    assert r.status_code == 422
    assert r.json()["details"]["field"] == "spec.deviceModelRef.name"
    assert "thermostat-model" in r.json()["message"]


async def test_cloud_serves_from_postgresql(tmp_path: Path, postgres_url: str) -> None:
    schema = f"ew_api_{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        async with open_test_cloud(tmp_path / "pg", store_url=url) as cloud:
            assert (await cloud.http.post(APPS, json=app_manifest())).status_code == 201
            assert (await cloud.http.get(f"{APPS}/counter")).status_code == 200
            assert (await cloud.http.get("/version")).json()["store"] == "postgresql"
    finally:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_events_reported_by_nodes_are_listed_per_object(cloud: TestCloud) -> None:
    from edgeweave.cloud.store.factory import open_store

    store = await open_store("", cloud.admin_config.parent)
    try:
        rows = [
            ("edge-1", 1_700_000_000.0, "App", "default", "counter", "Normal", "Started", "pid 7"),
            ("edge-2", 1_700_000_001.0, "App", "default", "other", "Warning", "Failed", "exit 1"),
        ]
        await store.commit_upstream("edge-1", 2, rows, [])
    finally:
        await store.aclose()
    r = await cloud.http.get(
        "/api/v1/events", params={"kind": "App", "namespace": "default", "name": "counter"}
    )
    assert r.status_code == 200, r.text
    assert [(e["node"], e["reason"]) for e in r.json()["items"]] == [("edge-1", "Started")]
    bad = await cloud.http.get("/api/v1/events", params={"limit": "0"})
    assert bad.status_code == 400
    async with httpx.AsyncClient(verify=cloud.ssl_context()) as anon:
        assert (await anon.get(cloud.url + "/api/v1/events")).status_code == 401
