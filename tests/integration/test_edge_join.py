"""`edgeweave edge join`'s client side against a real cloud: the CA pin, identity files, errors."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.edge.cloudapi import join
from edgeweave.edge.identity import load_identity
from edgeweave.errors import AlreadyExists, Unauthorized
from edgeweave.testing.cloud import TestCloud, open_test_cloud


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[TestCloud]:
    async with open_test_cloud(tmp_path / "cloud") as c:
        yield c


async def token(cloud: TestCloud, node: str | None = None) -> str:
    body = {"node": node} if node else {}
    r = await cloud.http.post("/api/v1/tokens", json=body)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["token"])


async def test_join_writes_an_identity_the_agent_can_load(cloud: TestCloud, tmp_path: Path) -> None:
    data = tmp_path / "edge-1"
    identity = await join(cloud.url, await token(cloud), "edge-1", data, {"role": "camera"})
    loaded = load_identity(data)
    assert (loaded.node, loaded.labels) == ("edge-1", {"role": "camera"})
    assert loaded.hub_url == identity.hub_url and loaded.hub_url.startswith("wss://")
    assert stat.S_IMODE((data / "pki" / "node.key").stat().st_mode) == 0o600
    assert "certNotAfter" in json.loads((data / "node.yaml").read_text())
    node = (await cloud.http.get("/apis/edgeweave.io/v1/nodes/edge-1")).json()
    assert node["metadata"]["labels"] == {"role": "camera"}


async def test_a_cloud_whose_ca_does_not_match_the_pin_is_refused_before_anything_is_sent(
    cloud: TestCloud, tmp_path: Path
) -> None:
    real = await token(cloud)
    impostor = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    forged_pin = impostor.fingerprint.removeprefix("sha256:")
    wrong = forged_pin + real[real.index(".") :]  # the token of a different cloud
    data = tmp_path / "edge-2"
    with pytest.raises(Unauthorized, match=r"(?i)pin|CA"):
        await join(cloud.url, wrong, "edge-2", data)
    assert not (data / "pki" / "node.key").exists()
    assert (await cloud.http.get("/apis/edgeweave.io/v1/nodes/edge-2")).status_code == 404


async def test_a_second_node_with_the_same_name_is_refused(
    cloud: TestCloud, tmp_path: Path
) -> None:
    await join(cloud.url, await token(cloud), "edge-1", tmp_path / "first")
    with pytest.raises(AlreadyExists, match="edge-1"):
        await join(cloud.url, await token(cloud), "edge-1", tmp_path / "second")
    # a token naming the node re-joins it (a replaced machine)
    await join(cloud.url, await token(cloud, "edge-1"), "edge-1", tmp_path / "second")


async def test_a_malformed_token_is_refused_without_a_network_call(tmp_path: Path) -> None:
    with pytest.raises(Unauthorized):
        await join("https://127.0.0.1:9", "not-a-token", "edge-1", tmp_path / "x")


async def test_a_node_may_not_give_itself_the_platforms_labels(
    cloud: TestCloud, tmp_path: Path
) -> None:
    from edgeweave.errors import Forbidden

    with pytest.raises(Forbidden, match=r"edgeweave\.io/worker"):
        await join(
            cloud.url,
            await token(cloud),
            "edge-9",
            tmp_path / "n",
            {"edgeweave.io/worker": "cloud"},
        )
    assert (await cloud.http.get("/apis/edgeweave.io/v1/nodes/edge-9")).status_code == 404
