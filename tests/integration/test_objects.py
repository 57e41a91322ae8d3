"""The object store over HTTP against a real cloud: push, dedup, verify, limits, presigned GET,
ranges. The synchronous client runs in a worker thread (the cloud shares this event loop)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edgeweave.cli.artifact import push_file
from edgeweave.client.config import load_config
from edgeweave.client.http import Client
from edgeweave.cloud.objects import load_or_create_object_url_secret, sign_object_url
from edgeweave.config.settings import ApiSettings
from edgeweave.errors import InvalidObject, PayloadTooLarge
from edgeweave.testing.cloud import TestCloud, open_test_cloud


class CountingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.methods: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[TestCloud]:
    async with open_test_cloud(tmp_path / "cloud", api=ApiSettings(max_body_bytes=4096)) as c:
        yield c


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def client_for(cloud: TestCloud) -> tuple[Client, CountingTransport]:
    config = load_config(str(cloud.admin_config), {})
    counting = CountingTransport(httpx.HTTPTransport(verify=config.ssl_context()))
    return Client(config, transport=counting), counting


async def test_push_round_trip_and_dedup(cloud: TestCloud, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4: over the JSON body limit
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    client, counting = client_for(cloud)
    with client:
        digest, uploaded = await asyncio.to_thread(push_file, client, path)
        assert (digest, uploaded) == (digest_of(data), True)
        assert counting.methods == ["HEAD", "PUT"]
        counting.methods.clear()
        again = await asyncio.to_thread(push_file, client, path)
        assert again == (digest, False)
        assert counting.methods == ["HEAD"]  # no body sent the second time
    head = await cloud.http.head(f"/api/v1/objects/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    got = await cloud.http.get(f"/api/v1/objects/{digest}")
    assert got.status_code == 200 and got.content == data
    stored = cloud.admin_config.parent / "objects" / "sha256" / digest[7:9] / digest[7:]
    assert stored.read_bytes() == data


async def test_unknown_object_and_bad_digest(cloud: TestCloud) -> None:
    absent = digest_of(b"never pushed")
    assert (await cloud.http.head(f"/api/v1/objects/{absent}")).status_code == 404
    assert (await cloud.http.get(f"/api/v1/objects/{absent}")).status_code == 404
    for bad in ("sha256:XYZ", "md5:" + "a" * 32, "sha256:" + "A" * 64):
        answer = await cloud.http.get(f"/api/v1/objects/{bad}")
        assert answer.status_code == 400, bad
        assert "64 lowercase hex" in answer.json()["message"]


async def test_a_body_that_does_not_hash_to_the_digest_is_refused(cloud: TestCloud) -> None:
    claimed = digest_of(b"what I said")
    answer = await cloud.http.put(f"/api/v1/objects/{claimed}", content=b"something else")
    assert answer.status_code == 422
    assert f"not {claimed}" in answer.json()["message"]
    assert (await cloud.http.head(f"/api/v1/objects/{claimed}")).status_code == 404
    client, _ = client_for(cloud)
    with client, pytest.raises(InvalidObject):
        await asyncio.to_thread(client.put_object, claimed, [b"other"], 5)


async def test_an_object_over_the_limit_is_refused(tmp_path: Path) -> None:
    from edgeweave.cloud.server import open_cloud
    from edgeweave.config.settings import CloudSettings, ObjectSettings, ServerSettings

    settings = CloudSettings(
        data_dir=tmp_path / "small",
        server=ServerSettings(host="127.0.0.1", port=0, hub_port=0),
        objects=ObjectSettings(max_bytes=1000),
        write_user_config=False,
    )
    data = b"x" * 1001
    async with open_cloud(settings) as running:
        config = load_config(str(running.endpoint.admin_config), {})
        with Client(config) as client:
            with pytest.raises(PayloadTooLarge):  # announced length
                await asyncio.to_thread(client.put_object, digest_of(data), [data], len(data))

            def chunked() -> object:  # streamed without a length
                request = client._http.build_request(
                    "PUT",
                    f"/api/v1/objects/{digest_of(data)}",
                    content=iter([data[:500], data[500:]]),
                )
                return client._http.send(request).status_code

            assert await asyncio.to_thread(chunked) == 413


async def test_presigned_get_and_expired_or_tampered_urls(cloud: TestCloud) -> None:
    data = b"artifact bytes " * 100
    digest = digest_of(data)
    assert (await cloud.http.put(f"/api/v1/objects/{digest}", content=data)).status_code == 201
    secret = load_or_create_object_url_secret(cloud.admin_config.parent)
    url = sign_object_url(secret, digest, "cam-1", int(time.time()) + 300, base_url=cloud.url)
    async with httpx.AsyncClient(verify=cloud.ssl_context()) as anon:
        ok = await anon.get(url)
        assert ok.status_code == 200 and ok.content == data
        expired = sign_object_url(secret, digest, "cam-1", int(time.time()) - 1, base_url=cloud.url)
        assert (await anon.get(expired)).status_code == 403
        assert "expired" in (await anon.get(expired)).json()["message"]
        tampered = url.replace("node=cam-1", "node=cam-2")
        assert (await anon.get(tampered)).status_code == 403
        no_sig = (await anon.get(f"{cloud.url}/api/v1/objects/{digest}")).status_code
        assert no_sig == 401
        put = await anon.put(url, content=data)  # a signature is for downloads only
        assert put.status_code == 401


async def test_range_downloads(cloud: TestCloud) -> None:
    data = bytes(range(100))
    digest = digest_of(data)
    await cloud.http.put(f"/api/v1/objects/{digest}", content=data)
    path = f"/api/v1/objects/{digest}"
    part = await cloud.http.get(path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == "bytes 10-19/100"
    rest = await cloud.http.get(path, headers={"Range": "bytes=90-"})
    assert rest.status_code == 206 and rest.content == data[90:]
    suffix = await cloud.http.get(path, headers={"Range": "bytes=-5"})
    assert suffix.content == data[-5:]
    bad = await cloud.http.get(path, headers={"Range": "bytes=100-200"})
    assert bad.status_code == 416 and bad.headers["content-range"] == "bytes */100"
