"""The agent's HTTPS calls to the cloud: joining, and downloading artifacts.

The only edge module that imports httpx; it translates httpx errors into edgeweave errors.
Joining trusts nothing until the CA the cloud presents matches the pin in the join token; from
then on only that CA is trusted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import yaml

from edgeweave.edge.hostinfo import local_addresses
from edgeweave.edge.identity import NodeIdentity, identity_file
from edgeweave.errors import APIError, LinkBroken, error_for_reason
from edgeweave.transport.certs import (
    generate_key_and_csr,
    parse_ca_pin,
    ssl_client_context,
    verify_ca_pin,
    write_file_atomic,
)

TIMEOUT_S = 15.0


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        reason, message = str(body.get("reason", "")), str(body.get("message", ""))
    except ValueError:
        reason, message = "", response.text[:200]
    cls = error_for_reason(reason)
    text = f"{what}: {message or response.reason_phrase} ({response.status_code})"
    if cls is not None and cls is not APIError:
        raise cls(text)
    raise APIError(text, status=response.status_code, api_reason=reason)


async def join(
    server: str,
    token: str,
    node: str,
    data_dir: Path,
    labels: dict[str, str] | None = None,
) -> NodeIdentity:
    """Verify the cloud CA against the token's pin, get a certificate, write the identity."""
    pin = parse_ca_pin(token)  # Unauthorized for a malformed token, before any network call
    server = server.rstrip("/")
    try:
        # the CA is fetched without verification on purpose: it is checked against the pin
        async with httpx.AsyncClient(verify=False, timeout=TIMEOUT_S) as anon:  # noqa: S501
            r = await anon.get(f"{server}/api/v1/ca")
            _raise_for(r, "fetching the cloud CA")
            ca_pem = r.content
    except httpx.HTTPError as e:
        raise LinkBroken(f"cannot reach the cloud at {server}: {e}") from e
    verify_ca_pin(ca_pem, pin)
    key_pem, csr_pem = generate_key_and_csr(node)
    body: dict[str, Any] = {
        "token": token,
        "node": node,
        "csr": csr_pem.decode(),
        "labels": labels or {},
        "addresses": local_addresses(),
    }
    try:
        async with httpx.AsyncClient(
            verify=ssl_client_context(ca_pem), timeout=TIMEOUT_S
        ) as client:
            r = await client.post(f"{server}/api/v1/join", json=body)
    except httpx.HTTPError as e:
        raise LinkBroken(f"cannot reach the cloud at {server}: {e}") from e
    _raise_for(r, f"joining as {node}")
    answer = r.json()
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_file_atomic(pki / "ca.crt", ca_pem, mode=0o644)
    write_file_atomic(pki / "node.key", key_pem, mode=0o600)
    write_file_atomic(pki / "node.crt", str(answer["certificate"]).encode(), mode=0o644)
    identity = NodeIdentity(
        data_dir=data_dir,
        node=node,
        hub_url=str(answer["hubUrl"]),
        api_url=str(answer.get("apiUrl") or server),
        labels=dict(labels or {}),
    )
    doc = {
        "node": node,
        "hubUrl": identity.hub_url,
        "apiUrl": identity.api_url,
        "labels": identity.labels,
    }
    write_file_atomic(identity_file(data_dir), yaml.safe_dump(doc).encode(), mode=0o644)
    return identity


async def download(url: str, dest: Path, expected_digest: str, identity: NodeIdentity) -> None:
    """Download ``url`` to ``dest``, resuming a partial file with Range; the caller verifies."""
    start = dest.stat().st_size if dest.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        async with (
            httpx.AsyncClient(verify=identity.ssl_context(), timeout=TIMEOUT_S) as client,
            client.stream("GET", url, headers=headers) as r,
        ):
            if r.status_code == 416:  # already complete
                return
            if r.status_code >= 400:
                await r.aread()
                _raise_for(r, f"downloading {expected_digest}")
            mode = "ab" if r.status_code == 206 else "wb"
            with open(dest, mode) as f:
                async for chunk in r.aiter_bytes(1 << 16):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
    except httpx.HTTPError as e:
        raise LinkBroken(f"downloading {expected_digest} failed: {e}") from e
