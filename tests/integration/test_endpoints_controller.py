"""The endpoints controller inside a real cloud (composition root, API, SQLite), driven over HTTP.

Services, Apps with per-node status and Nodes with addresses go in through the public API, as
the hub and users write them; the Endpoints object each Service gets is read back the same
way. Users cannot write Endpoints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edgeweave.testing.cloud import TestCloud, open_test_cloud

WAIT_S = 10.0
API = "/apis/edgeweave.io/v1"
NS = f"{API}/namespaces/default"


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[TestCloud]:
    async with open_test_cloud(tmp_path / "cloud") as c:
        yield c


async def create(cloud: TestCloud, path: str, body: dict[str, Any]) -> None:
    r = await cloud.http.post(path, json=body)
    assert r.status_code == 201, r.text


async def patch_status(cloud: TestCloud, path: str, status: dict[str, Any]) -> None:
    r = await cloud.http.patch(f"{path}/status", json={"status": status})
    assert r.status_code == 200, r.text


async def endpoints(cloud: TestCloud, name: str = "web") -> dict[str, Any] | None:
    r = await cloud.http.get(f"{NS}/endpoints/{name}")
    return r.json() if r.status_code == 200 else None


async def wait_endpoints(
    cloud: TestCloud, check: Callable[[dict[str, Any] | None], bool], name: str = "web"
) -> dict[str, Any] | None:
    """Poll until the Endpoints object satisfies ``check`` (the controller works behind a watch)."""
    async with asyncio.timeout(WAIT_S):
        while not check(found := await endpoints(cloud, name)):
            await asyncio.sleep(0.02)
    return found


async def next_change(cloud: TestCloud, after_rv: str) -> dict[str, Any]:
    """The first write to the Endpoints object after ``after_rv``, from a watch."""
    url = f"{NS}/endpoints?watch=true&resourceVersion={after_rv}"
    async with asyncio.timeout(WAIT_S), cloud.http.stream("GET", url) as r:
        async for line in r.aiter_lines():
            event = json.loads(line)
            if event["type"] != "BOOKMARK":
                return dict(event["object"])
    raise AssertionError("the watch ended")


def web_app(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {"role": "web"},
            "lifecycle": {"run": ["python3", "web.py"]},
            "ports": [{"name": "http", "port": 8080 if name == "web-1" else 9090}],
        },
    }


async def add_node(cloud: TestCloud, name: str, address: str) -> None:
    await create(
        cloud,
        f"{API}/nodes",
        {"apiVersion": "edgeweave.io/v1", "kind": "Node", "metadata": {"name": name}},
    )
    await patch_status(
        cloud, f"{API}/nodes/{name}", {"addresses": [{"type": "InternalIP", "address": address}]}
    )


def summary(obj: dict[str, Any] | None) -> set[tuple[str, str, str, bool, int]]:
    if obj is None:
        return set()
    return {
        (e["node"], e["app"], e["address"], e["ready"], e["ports"][0]["targetPort"])
        for e in obj.get("endpoints", [])
    }


async def test_endpoints_follow_services_app_instances_and_node_addresses(cloud: TestCloud) -> None:
    await add_node(cloud, "a", "10.0.0.1")
    await add_node(cloud, "b", "10.0.0.2")
    await create(
        cloud,
        f"{NS}/services",
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    await wait_endpoints(cloud, lambda o: o is not None and o["endpoints"] == [])
    await create(cloud, f"{NS}/apps", web_app("web-1"))
    await create(cloud, f"{NS}/apps", web_app("web-2"))
    running = {"phase": "Running", "ready": True}
    await patch_status(cloud, f"{NS}/apps/web-1", {"nodes": {"a": running, "b": running}})
    await patch_status(cloud, f"{NS}/apps/web-2", {"nodes": {"b": {"phase": "Installing"}}})
    want = {("a", "web-1", "10.0.0.1", True, 8080), ("b", "web-1", "10.0.0.2", True, 8080)}
    await wait_endpoints(cloud, lambda o: summary(o) == want)

    # health, a new instance, an address change: each shows up
    await patch_status(
        cloud, f"{NS}/apps/web-1", {"nodes": {"a": {"phase": "Running", "ready": False}}}
    )
    await patch_status(cloud, f"{NS}/apps/web-2", {"nodes": {"b": running}})
    await patch_status(
        cloud, f"{API}/nodes/b", {"addresses": [{"type": "InternalIP", "address": "10.0.0.9"}]}
    )
    want = {
        ("a", "web-1", "10.0.0.1", False, 8080),
        ("b", "web-1", "10.0.0.9", True, 8080),
        ("b", "web-2", "10.0.0.9", True, 9090),
    }
    await wait_endpoints(cloud, lambda o: summary(o) == want)

    # a consumer node's reported paths land in status; a restart count changes nothing
    await patch_status(
        cloud, f"{API}/nodes/a", {"meshPaths": {"b": "relay", "elsewhere": "direct"}}
    )
    found = await wait_endpoints(cloud, lambda o: o is not None and o["status"]["paths"] != {})
    assert found is not None and found["status"]["paths"] == {"a": {"b": "relay"}}
    rv = found["metadata"]["resourceVersion"]
    await patch_status(
        cloud, f"{NS}/apps/web-2", {"nodes": {"b": {**running, "restarts": 3, "pid": 42}}}
    )
    await patch_status(cloud, f"{NS}/apps/web-1", {"nodes": {"b": None}})  # a change after it
    first = await next_change(cloud, rv)
    assert len(first["endpoints"]) == 2  # the restart count wrote nothing; the next change did
    after = await endpoints(cloud)
    assert after is not None

    # users may read Endpoints, never write them; the Service gone, its Endpoints go too
    r = await cloud.http.delete(f"{NS}/endpoints/web")
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
    r = await cloud.http.post(f"{NS}/endpoints", json={**after, "metadata": {"name": "x"}})
    assert r.status_code == 403
    await cloud.http.delete(f"{NS}/services/web")
    await wait_endpoints(cloud, lambda o: o is None)
