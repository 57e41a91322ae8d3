"""`open_test_cloud`: a real cloud in this process, on a free loopback port, in a temp dir."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from edgeweave.client.async_http import AsyncClient
from edgeweave.cloud.server import RunningCloud, open_cloud
from edgeweave.config.settings import (
    ApiSettings,
    CloudSettings,
    PipelineSettings,
    ServerSettings,
    StoreSettings,
)


@dataclass
class TestCloud:
    running: RunningCloud
    http: httpx.AsyncClient  # authenticated, TLS-verified against the cloud's CA

    __test__ = False  # not a pytest test class

    @property
    def url(self) -> str:
        return self.running.endpoint.url

    @property
    def token(self) -> str:
        return self.running.endpoint.token

    def client(self) -> AsyncClient:
        """An :class:`~edgeweave.client.async_http.AsyncClient` of this cloud (close it)."""
        from edgeweave.client.config import load_config

        return AsyncClient(load_config(str(self.admin_config), {}))

    @property
    def admin_config(self) -> Path:
        return self.running.endpoint.admin_config

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.running.endpoint.ca_pem)


@contextlib.asynccontextmanager
async def open_test_cloud(
    data_dir: Path,
    *,
    store_url: str = "",
    api: ApiSettings | None = None,
    tls: bool = True,
    pipelines: PipelineSettings | None = None,
) -> AsyncIterator[TestCloud]:
    settings = CloudSettings(
        data_dir=data_dir,
        server=ServerSettings(host="127.0.0.1", port=0, hub_port=0, tls=tls),
        store=StoreSettings(url=store_url),
        api=api or ApiSettings(),
        pipelines=pipelines or PipelineSettings(),
        write_user_config=False,
    )
    async with open_cloud(settings) as running:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cadata=running.endpoint.ca_pem) if tls else False
        )
        async with httpx.AsyncClient(
            base_url=running.endpoint.url,
            verify=verify,
            headers={"Authorization": f"Bearer {running.endpoint.token}"},
            timeout=10.0,
        ) as http:
            yield TestCloud(running, http)
