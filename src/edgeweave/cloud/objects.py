"""The cloud's content-addressed object store (artifacts, pipeline data) and presigned URLs.

Objects are files ``ROOT/sha256/<hex[:2]>/<hex>`` named by the sha256 of their bytes
(``sha256:<64 lowercase hex>``). A write streams into a temp file in the final directory
while hashing, refuses a body that hashes to something else or grows past ``max_bytes``, and
renames into place atomically, so a reader never sees a partial object and writing the same
object twice is harmless. Nodes download with a short-lived URL signed by HMAC-SHA256 over
``digest|node|exp`` with the key in ``DATA/object-url-secret``.

Must not trust a caller's digest without hashing, follow symlinks out of its root, or do
blocking file I/O on the event loop (it runs in worker threads).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from edgeweave.errors import (
    BadRequest,
    Forbidden,
    InvalidObject,
    NotFound,
    PayloadTooLarge,
)
from edgeweave.models.formats import DIGEST_RE
from edgeweave.transport.certs import load_or_create_hex_key

DIGEST_PREFIX = "sha256:"
OBJECT_URL_SECRET_FILE = "object-url-secret"  # noqa: S105 (a file name)
OBJECTS_PATH = "/api/v1/objects"
READ_CHUNK_BYTES = 256 * 1024


def check_digest(digest: str) -> str:
    """The hex part of a valid ``sha256:<64 lowercase hex>`` digest; BadRequest otherwise."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise BadRequest(
            f"not an object digest: {str(digest)[:80]!r}; expected 'sha256:' and 64 lowercase "
            "hex characters"
        )
    return digest[len(DIGEST_PREFIX) :]


@dataclass
class ObjectStats:
    writes: int = 0  # objects stored (not counting writes of an object already present)
    bytes_written: int = 0
    deduplicated: int = 0  # writes of an object that was already present


class ObjectStore:
    """Content-addressed files under ``root``; see the module docstring."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.stats = ObjectStats()

    def path_of(self, digest: str) -> Path:
        hex_ = check_digest(digest)
        return self.root / "sha256" / hex_[:2] / hex_

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size(self, digest: str) -> int:
        """Bytes of a stored object; NotFound when absent."""
        try:
            return self.path_of(digest).stat().st_size
        except FileNotFoundError as e:
            raise NotFound(f"object {digest} not found: push it first") from e

    async def write_stream(self, digest: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the object the chunks make; returns its size. Idempotent."""
        final = self.path_of(digest)
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = await asyncio.to_thread(
            tempfile.mkstemp, dir=final.parent, prefix=".upload-", suffix=".tmp"
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                hasher = hashlib.sha256()
                size = 0
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(
                            f"object is over the limit of {self.max_bytes} bytes "
                            "(setting objects.max_bytes)"
                        )
                    hasher.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
                await asyncio.to_thread(_flush, f)
            actual = DIGEST_PREFIX + hasher.hexdigest()
            if not hmac.compare_digest(actual, digest):
                raise InvalidObject(
                    f"content hashes to {actual}, not {digest}: the upload was corrupted or the "
                    "digest is wrong",
                    field="digest",
                )
            if final.is_file():
                self.stats.deduplicated += 1
            else:
                await asyncio.to_thread(os.replace, tmp, final)
                self.stats.writes += 1
                self.stats.bytes_written += size
            return size
        finally:
            tmp.unlink(missing_ok=True)

    async def open_range(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of an object (``end`` None = to the end), in chunks."""
        path = self.path_of(digest)
        try:
            # opened on the loop, not in a thread: a request cancelled while a thread opened
            # the file would drop the open file unclosed (a ResourceWarning, a leaked fd)
            f: BinaryIO = path.open("rb")
        except FileNotFoundError as e:
            raise NotFound(f"object {digest} not found") from e
        try:
            await asyncio.to_thread(f.seek, start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                want = READ_CHUNK_BYTES if remaining is None else min(READ_CHUNK_BYTES, remaining)
                chunk = await asyncio.to_thread(f.read, want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(f.close)


def _flush(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


# ---- presigned URLs ---------------------------------------------------------------------


def load_or_create_object_url_secret(data_dir: Path) -> bytes:
    """The HMAC key in ``data_dir/object-url-secret`` (hex text, 0600), made on first use."""
    return load_or_create_hex_key(data_dir / OBJECT_URL_SECRET_FILE, what="object URL secret")


def _signature(secret: bytes, digest: str, node: str, expires_at: int) -> str:
    message = f"{digest}|{node}|{expires_at}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_object_url(
    secret: bytes, digest: str, node: str, expires_at: int, *, base_url: str = ""
) -> str:
    """``{base_url}/api/v1/objects/<digest>?node=&exp=&sig=``, valid until ``expires_at``
    (Unix seconds) for ``node``."""
    check_digest(digest)
    query = urlencode(
        {"node": node, "exp": str(expires_at), "sig": _signature(secret, digest, node, expires_at)}
    )
    return f"{base_url.rstrip('/')}{OBJECTS_PATH}/{digest}?{query}"


def sign_subject_url(
    secret: bytes, subject: str, path: str, node: str, expires_at: int, *, base_url: str = ""
) -> str:
    """Like :func:`sign_object_url` for another ``subject`` (e.g. ``commit:<id>``) at ``path``;
    :func:`verify_object_url` with the same subject checks it."""
    sig = _signature(secret, subject, node, expires_at)
    query = urlencode({"node": node, "exp": str(expires_at), "sig": sig})
    return f"{base_url.rstrip('/')}{path}?{query}"


def verify_object_url(
    secret: bytes, digest: str, node: str, exp: str, sig: str, *, now: float | None = None
) -> None:
    """Forbidden unless ``sig`` signs ``digest|node|exp`` and ``exp`` is in the future."""
    try:
        expires_at = int(exp)
    except ValueError as e:
        raise Forbidden("presigned URL: exp is not a number") from e
    expected = _signature(secret, digest, node, expires_at)
    if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogatepass")):
        raise Forbidden("presigned URL signature is invalid")
    if (time.time() if now is None else now) >= expires_at:
        raise Forbidden("presigned URL has expired: ask for a new one")
