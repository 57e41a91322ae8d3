"""The agent's HTTPS calls to the cloud: joining, downloading artifacts and Copier commits.

The only edge module that imports httpx; it translates httpx errors into edgeweave errors.
httpx is used by :func:`join` only (a one-off command) and imported there: the running agent
never loads it (it costs several MB of memory for as long as the process lives). Artifact
downloads — the agent's only HTTP — are a plain HTTP/1.1 GET over asyncio streams with the
node's TLS context (:func:`download`), as the runtime's HTTP probe is.
Joining trusts nothing until the CA the cloud presents matches the pin in the join token; from
then on only that CA is trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from edgeweave.edge.hostinfo import local_addresses
from edgeweave.edge.identity import NodeIdentity, save_identity
from edgeweave.errors import APIError, LinkBroken, error_for_reason
from edgeweave.transport.certs import (
    cert_not_after,
    generate_key_and_csr,
    parse_ca_pin,
    ssl_client_context,
    verify_ca_pin,
    write_file_atomic,
)

if TYPE_CHECKING:
    import httpx

TIMEOUT_S = 15.0


def _raise_for(response: httpx.Response, what: str) -> None:
    _raise_for_status(response.status_code, response.reason_phrase, response.content, what)


def _raise_for_status(status: int, phrase: str, content: bytes, what: str) -> None:
    if status < 400:
        return
    reason, message = "", ""
    try:
        body = json.loads(content)
    except ValueError:
        message = content[:200].decode("utf-8", "replace")
    else:
        if isinstance(body, dict):
            reason, message = str(body.get("reason", "")), str(body.get("message", ""))
    cls = error_for_reason(reason)
    text = f"{what}: {message or phrase} ({status})"
    if cls is not None and cls is not APIError:
        raise cls(text)
    raise APIError(text, status=status, api_reason=reason)


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.rstrip(".").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def reachable_url(url: str, server: str) -> str:
    """``url`` as the cloud sent it, unless it names a loopback host while ``server`` (the URL
    the user joined with) does not: a cloud listening on 127.0.0.1 behind a proxy or NAT only
    knows itself as loopback, and a remote node dialling that reaches itself. Then the host is
    replaced by ``server``'s (scheme, port, path and query kept)."""
    parts = urlsplit(url)
    target = urlsplit(server)
    if not _is_loopback(parts.hostname) or not target.hostname or _is_loopback(target.hostname):
        return url
    host = target.hostname
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


async def join(
    server: str,
    token: str,
    node: str,
    data_dir: Path,
    labels: dict[str, str] | None = None,
) -> NodeIdentity:
    """Verify the cloud CA against the token's pin, get a certificate, write the identity."""
    import httpx

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
    cert_pem = str(answer["certificate"]).encode()
    expires = cert_not_after(cert_pem)  # InvalidObject if the cloud sent no certificate
    write_file_atomic(pki / "node.crt", cert_pem, mode=0o644)
    identity = NodeIdentity(
        data_dir=data_dir,
        node=node,
        hub_url=reachable_url(str(answer["hubUrl"]), server),
        api_url=reachable_url(str(answer.get("apiUrl") or server), server),
        labels=dict(labels or {}),
    )
    save_identity(identity, expires)
    return identity


async def download(url: str, dest: Path, expected_digest: str, identity: NodeIdentity) -> None:
    """Download ``url`` to ``dest``, resuming a partial file with Range; the caller verifies."""
    start = dest.stat().st_size if dest.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    what = f"downloading {expected_digest}"
    try:
        await _get_to_file(url, headers, identity.ssl_context(), dest, what)
    except (OSError, TimeoutError, EOFError, ValueError) as e:  # ssl.SSLError is an OSError
        raise LinkBroken(f"{what} failed: {e or type(e).__name__}") from e


_MAX_HEADER_LINES = 100
_MAX_ERROR_BODY_BYTES = 64 * 1024
_CHUNK_BYTES = 1 << 16


async def fetch_bytes(
    url: str,
    identity: NodeIdentity,
    max_bytes: int,
    what: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
) -> bytes:
    """``method`` ``url`` (with ``body``) and read the answer into memory (a manifest, a chunk,
    a JSON reply); LinkBroken past ``max_bytes`` or when the cloud is unreachable."""
    out = bytearray()

    async def keep(status: int, body: AsyncIterator[bytes]) -> None:
        async for block in body:
            out.extend(block)
            if len(out) > max_bytes:
                raise ValueError(f"answer is over {max_bytes} bytes")

    try:
        await _get(url, {}, identity.ssl_context(), what, keep, method=method, body=body)
    except (OSError, TimeoutError, EOFError, ValueError) as e:
        raise LinkBroken(f"{what} failed: {e or type(e).__name__}") from e
    return bytes(out)


async def _get_to_file(
    url: str, headers: dict[str, str], context: ssl.SSLContext, dest: Path, what: str
) -> None:
    """One HTTP/1.1 GET of ``url``; a 200 body replaces ``dest``, a 206 body is appended."""

    async def write(status: int, body: AsyncIterator[bytes]) -> None:
        with open(dest, "ab" if status == 206 else "wb") as f:
            async for chunk in body:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())

    await _get(url, headers, context, what, write)


Consume = Callable[[int, AsyncIterator[bytes]], Awaitable[None]]


async def _get(
    url: str,
    headers: dict[str, str],
    context: ssl.SSLContext,
    what: str,
    consume: Consume,
    *,
    method: str = "GET",
    body: bytes | None = None,
) -> None:
    """One HTTP/1.1 request (GET unless ``method``); a 2xx answer's body goes to
    ``consume(status, body)``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"unsupported URL {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    async with asyncio.timeout(TIMEOUT_S):
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=context if tls else None
        )
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += ["User-Agent: edgeweave-agent", "Accept-Encoding: identity", "Connection: close"]
        if body is not None:
            lines += [f"Content-Length: {len(body)}", "Content-Type: application/octet-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if body is not None:
            writer.write(body)
        async with asyncio.timeout(TIMEOUT_S):
            await writer.drain()
            status, phrase, fields = await _read_head(reader)
        if status == 416:  # already complete
            return
        async with contextlib.aclosing(_body(reader, fields)) as answer:
            if status >= 400:
                content = b""
                async for chunk in answer:
                    content += chunk
                    if len(content) > _MAX_ERROR_BODY_BYTES:
                        break
                _raise_for_status(status, phrase, content, what)
            if status not in (200, 201, 206):
                raise ValueError(f"unexpected HTTP status {status} {phrase}")
            await consume(status, answer)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    """Status code, reason phrase and (lower-cased) header fields of a response."""
    status_line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, phrase = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    fields: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            return int(code), phrase, fields
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad HTTP header line {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    raise ValueError("too many HTTP header lines")


async def _body(
    reader: asyncio.StreamReader, fields: dict[str, str]
) -> AsyncGenerator[bytes, None]:
    """The body's bytes: chunked, Content-Length delimited, or up to the end of the stream."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            async with asyncio.timeout(TIMEOUT_S):
                size_line = await reader.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                return
            while size > 0:
                async with asyncio.timeout(TIMEOUT_S):
                    chunk = await reader.readexactly(min(size, _CHUNK_BYTES))
                size -= len(chunk)
                yield chunk
            async with asyncio.timeout(TIMEOUT_S):
                await reader.readexactly(2)  # the CRLF after each chunk
    length = fields.get("content-length")
    remaining = int(length) if length is not None else -1
    while remaining != 0:
        want = _CHUNK_BYTES if remaining < 0 else min(remaining, _CHUNK_BYTES)
        async with asyncio.timeout(TIMEOUT_S):
            chunk = await reader.read(want)
        if not chunk:
            if remaining > 0:
                raise EOFError(f"connection closed with {remaining} bytes still to come")
            return
        if remaining > 0:
            remaining -= len(chunk)
        yield chunk
