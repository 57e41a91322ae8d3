"""The twin API (GET/PUT/PATCH .../devices/NAME/twin, GET .../twinhistory), its clients and the
``edgeweave twin`` commands, against a real cloud (uvicorn, TLS, SQLite) on loopback.

Reported values get into the store the way the hub writes them: ``commit_upstream`` on a
second store opened on the cloud's database file. The sync client and the CLI run in a
thread (they block), the cloud in this event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeweave.cli.main import main
from edgeweave.client.async_http import AsyncClient
from edgeweave.client.config import load_config
from edgeweave.client.http import Client
from edgeweave.config.settings import ApiSettings
from edgeweave.errors import BadRequest, NotFound
from edgeweave.testing.cloud import TestCloud, open_test_cloud

API = "/apis/devices.kubeedge.io/v1beta1/namespaces/default"
TWIN = f"{API}/devices/thermostat-1/twin"
HISTORY = f"{API}/devices/thermostat-1/twinhistory"

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "thermostat-model", "namespace": "default"},
    "spec": {
        "properties": [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
            {"name": "target", "type": "INT", "accessMode": "ReadWrite", "maximum": "35"},
            {"name": "heating", "type": "BOOLEAN"},
        ]
    },
}
DEVICE = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "Device",
    "metadata": {"name": "thermostat-1", "namespace": "default"},
    "spec": {
        "deviceModelRef": {"name": "thermostat-model"},
        "nodeName": "edge-1",
        "properties": [
            {"name": "temperature", "reportCycle": 10000},
            {"name": "target", "desired": {"value": "21", "metadata": {"type": "int"}}},
        ],
    },
}
STATUS = {
    "state": "online",
    "lastOnlineTime": "2026-11-26T09:00:00Z",
    "twins": [
        {
            "propertyName": "temperature",
            "reported": {"value": "21.5", "metadata": {"timestamp": "1700000000500"}},
        },
        {"propertyName": "target", "observedDesired": {"value": "21"}},
    ],
}


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[TestCloud]:
    async with open_test_cloud(tmp_path / "cloud", api=ApiSettings(max_body_bytes=64 * 1024)) as c:
        for obj, plural in ((MODEL, "devicemodels"), (DEVICE, "devices")):
            r = await c.http.post(f"{API}/{plural}", json=obj)
            assert r.status_code == 201, r.text
        r = await c.http.patch(
            f"{API}/devices/thermostat-1/status",
            content=json.dumps({"status": STATUS}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200, r.text
        yield c


async def report_samples(cloud: TestCloud, seq: int, samples: list[tuple[str, int, str]]) -> None:
    """What the hub commits for a node's ``device.twin`` samples."""
    from edgeweave.cloud.store.factory import open_store

    store = await open_store("", cloud.admin_config.parent)
    try:
        rows = [("default", "thermostat-1", p, t, v) for p, t, v in samples]
        await store.commit_upstream("edge-1", seq, [], [], rows)
    finally:
        await store.aclose()


def by_name(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in view["properties"]}


async def test_the_twin_view_joins_model_spec_and_status(cloud: TestCloud) -> None:
    r = await cloud.http.get(TWIN)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["device"]["name"] == "thermostat-1" and view["device"]["nodeName"] == "edge-1"
    assert view["state"] == "online" and view["lastOnlineTime"] == "2026-11-26T09:00:00Z"
    props = by_name(view)
    assert list(props) == ["temperature", "target", "heating"]  # the model's order
    assert props["temperature"] == {
        "name": "temperature",
        "type": "FLOAT",
        "accessMode": "ReadOnly",
        "desired": None,
        "reported": "21.5",
        "reportedAt": 1700000000500,
        "observedDesired": None,
    }
    assert props["target"]["desired"] == "21" and props["target"]["observedDesired"] == "21"
    assert props["heating"]["accessMode"] == "ReadWrite" and props["heating"]["desired"] is None


async def test_setting_desired_values_writes_the_spec_with_the_model_checked(
    cloud: TestCloud,
) -> None:
    r = await cloud.http.put(TWIN, json={"desired": {"target": "23", "heating": "true"}})
    assert r.status_code == 200, r.text
    props = by_name(r.json())
    assert props["target"]["desired"] == "23" and props["heating"]["desired"] == "true"
    stored = (await cloud.http.get(f"{API}/devices/thermostat-1")).json()
    assert stored["metadata"]["generation"] == 2
    target = stored["spec"]["properties"][1]
    assert target == {"name": "target", "desired": {"value": "23", "metadata": {"type": "int"}}}
    assert stored["spec"]["properties"][2] == {"name": "heating", "desired": {"value": "true"}}
    assert stored["status"] == STATUS  # untouched
    r = await cloud.http.patch(TWIN, json={"desired": {"heating": None}})
    assert r.status_code == 200 and by_name(r.json())["heating"]["desired"] is None


@pytest.mark.parametrize(
    ("desired", "named"),
    [
        ({"humidity": "40"}, "humidity"),
        ({"temperature": "20"}, "ReadOnly"),
        ({"target": "warm"}, "not an integer"),
        ({"target": "99"}, "range"),
        ({"target": 23}, "must be a string"),
        ({"bad name!": "1"}, "invalid"),
        ({"target": "1" * 513}, "longer than 512"),
    ],
)
async def test_values_the_model_refuses_get_400_naming_the_property(
    cloud: TestCloud, desired: dict[str, Any], named: str
) -> None:
    r = await cloud.http.put(TWIN, json={"desired": desired})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "BadRequest" and named in r.json()["message"]
    stored = (await cloud.http.get(f"{API}/devices/thermostat-1")).json()
    assert stored["metadata"]["generation"] == 1


async def test_bad_bodies_unknown_devices_and_stale_versions(cloud: TestCloud) -> None:
    for body in (b"[]", b"{}", b'{"desired": {}}', b'{"desired": "x"}', b"nope"):
        r = await cloud.http.put(TWIN, content=body)
        assert r.status_code == 400, (body, r.text)
    r = await cloud.http.put(
        TWIN, content=json.dumps({"desired": {"target": "2" * 60_000}}).encode() + b" " * 10_000
    )
    assert r.status_code == 413
    missing = f"{API}/devices/nope/twin"
    assert (await cloud.http.get(missing)).status_code == 404
    assert (await cloud.http.put(missing, json={"desired": {"a": "1"}})).status_code == 404
    r = await cloud.http.put(TWIN, json={"desired": {"target": "22"}, "resourceVersion": "1"})
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    rv = (await cloud.http.get(TWIN)).json()["device"]["resourceVersion"]
    r = await cloud.http.put(TWIN, json={"desired": {"target": "22"}, "resourceVersion": rv})
    assert r.status_code == 200
    async with httpx.AsyncClient(verify=cloud.ssl_context()) as anon:
        assert (await anon.get(cloud.url + TWIN)).status_code == 401
        assert (await anon.get(cloud.url + HISTORY)).status_code == 401


async def test_history_lists_reported_values_oldest_first(cloud: TestCloud) -> None:
    now = int(time.time() * 1000)
    await report_samples(
        cloud,
        1,
        [("temperature", now - 3000 + i * 1000, f"2{i}.0") for i in range(3)]
        + [("target", now - 2500, "21")],
    )
    r = await cloud.http.get(HISTORY, params={"property": "temperature"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(i["value"], i["timestamp"]) for i in items] == [
        ("20.0", now - 3000),
        ("21.0", now - 2000),
        ("22.0", now - 1000),
    ]
    r = await cloud.http.get(HISTORY, params={"property": "temperature", "limit": "1"})
    assert [i["value"] for i in r.json()["items"]] == ["22.0"]
    r = await cloud.http.get(HISTORY, params={"since": str(now - 2000)})
    assert [i["value"] for i in r.json()["items"]] == ["21.0", "22.0"]
    assert len((await cloud.http.get(HISTORY)).json()["items"]) == 4
    assert (await cloud.http.get(f"{API}/devices/nope/twinhistory")).status_code == 404
    for params in ({"limit": "0"}, {"limit": "x"}, {"since": "-1"}, {"property": "a b"}):
        assert (await cloud.http.get(HISTORY, params=params)).status_code == 400


async def test_the_openapi_document_lists_the_twin_paths(cloud: TestCloud) -> None:
    paths = (await cloud.http.get("/openapi.json")).json()["paths"]
    twin = "/apis/devices.kubeedge.io/v1beta1/namespaces/{namespace}/devices/{name}/twin"
    assert {"get", "put", "patch"} <= set(paths[twin])
    assert "get" in paths[twin + "history"]


async def test_the_async_and_sync_clients(cloud: TestCloud) -> None:
    config = load_config(str(cloud.admin_config))
    at = int(time.time() * 1000) - 60_000
    await report_samples(cloud, 1, [("temperature", at, "20.5")])
    async with AsyncClient(config) as client:
        view = await client.set_twin(None, "thermostat-1", {"target": "24"})
        assert by_name(view)["target"]["desired"] == "24"
        assert (
            by_name(await client.get_twin("default", "thermostat-1"))["target"]["desired"] == "24"
        )
        history = await client.twin_history(None, "thermostat-1", "temperature", since_ms=0)
        assert history == [{"property": "temperature", "value": "20.5", "timestamp": at}]
        with pytest.raises(BadRequest, match="humidity"):
            await client.set_twin(None, "thermostat-1", {"humidity": "1"})
    with pytest.raises(RuntimeError, match="closed"):  # no new connection after aclose
        await client.get_twin("default", "thermostat-1")

    def sync_calls() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with Client(config) as client:
            client.set_twin("default", "thermostat-1", {"target": "25"})
            with pytest.raises(NotFound):
                client.get_twin(None, "nope")
            return client.get_twin(None, "thermostat-1"), client.twin_history(
                None, "thermostat-1", limit=5
            )

    view, history = await asyncio.to_thread(sync_calls)
    assert by_name(view)["target"]["desired"] == "25" and len(history) == 1


async def run_cli(cloud: TestCloud, *argv: str) -> int:
    return await asyncio.to_thread(main, ["--config", str(cloud.admin_config), *argv])


async def test_the_twin_commands(cloud: TestCloud, capsys: pytest.CaptureFixture[str]) -> None:
    at = (int(time.time()) - 7200) * 1000 + 250  # two hours ago
    await report_samples(cloud, 1, [("temperature", at, "20.5")])
    assert await run_cli(cloud, "twin", "set", "thermostat-1", "target=24", "heating=true") == 0
    assert capsys.readouterr().out == (
        "device.devices.kubeedge.io/thermostat-1 desired: target=24, heating=true\n"
    )
    assert await run_cli(cloud, "twin", "get", "thermostat-1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "PROPERTY",
        "TYPE",
        "DESIRED",
        "REPORTED",
        "OBSERVED-DESIRED",
        "AGE",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["temperature"][:5] == ["temperature", "FLOAT", "<none>", "21.5", "<none>"]
    assert rows["target"][:5] == ["target", "INT", "24", "<none>", "21"]
    assert rows["heating"][:3] == ["heating", "BOOLEAN", "true"]
    assert await run_cli(cloud, "twin", "get", "thermostat-1", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["state"] == "online"

    assert await run_cli(cloud, "twin", "history", "thermostat-1", "temperature") == 0
    shown = datetime.fromtimestamp(at // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.250Z")
    assert capsys.readouterr().out.splitlines() == [
        "TIME                       VALUE",
        f"{shown}   20.5",
    ]
    assert (
        await run_cli(cloud, "twin", "history", "thermostat-1", "temperature", "--since", "1h") == 0
    )
    captured = capsys.readouterr()
    assert captured.out == "" and "No reported values" in captured.err

    assert await run_cli(cloud, "twin", "set", "thermostat-1", "humidity=3") == 1
    assert "humidity" in capsys.readouterr().err
    assert await run_cli(cloud, "twin", "set", "thermostat-1", "target") == 2
    assert "PROP=VALUE" in capsys.readouterr().err
    assert await run_cli(cloud, "twin", "get", "nope") == 1

    assert await run_cli(cloud, "get", "devices", "-o", "wide") == 0
    out = capsys.readouterr().out.splitlines()
    assert "DESIRED/REPORTED" in out[0]
    assert "temperature=-/21.5,target=24/-,heating=true/-" in out[1]
