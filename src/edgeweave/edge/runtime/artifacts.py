"""The verified artifact cache and placing artifacts into an app directory.

Artifacts are content addressed (``sha256:<hex>``). :class:`ArtifactCache` downloads one
through an injected :data:`Fetcher` into a temporary file, checks its sha256 and only then
moves it to ``root/sha256/<hex[:2]>/<hex>``; a file in the cache has therefore always been
verified. Concurrent ``ensure()`` calls for one digest share a single download.

This module must not know where bytes come from (the agent's fetcher asks the cloud for a
presigned URL; tests read local files) and must never hand out an unverified file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

from edgeweave.errors import EdgeweaveError
from edgeweave.models.formats import DIGEST_RE

# Downloads the bytes of ``digest`` into ``dest`` (a fresh path the fetcher creates).
Fetcher = Callable[[str, Path], Awaitable[None]]

_CHUNK_BYTES = 1024 * 1024
# Names the runtime itself uses inside an app directory.
RESERVED_NAMES = frozenset({"logs", "config", "secrets", "run.json", ".artifacts"})


class ArtifactMismatch(EdgeweaveError):
    """Downloaded bytes do not hash to the digest the App names; nothing was kept."""

    reason = "ArtifactMismatch"


def _hex_of(digest: str) -> str:
    if not DIGEST_RE.match(digest):
        raise ValueError(f"digest {digest!r} must be 'sha256:' followed by 64 lowercase hex")
    return digest.removeprefix("sha256:")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class ArtifactCache:
    """``DATA/cache`` on the node: verified artifacts by digest."""

    def __init__(self, root: Path, fetch: Fetcher) -> None:
        self.root = root
        self._fetch = fetch
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, digest: str) -> Path:
        hex_ = _hex_of(digest)
        return self.root / "sha256" / hex_[:2] / hex_

    def has(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    async def ensure(self, digest: str) -> Path:
        """The cached, verified file for ``digest``, downloading it first if needed."""
        final = self.path_for(digest)
        if final.is_file():
            return final
        lock = self._locks.setdefault(digest, asyncio.Lock())
        try:
            async with lock:
                # whoever held the lock before may have fetched it meanwhile
                if not final.is_file():
                    await self._download(digest, final)
        finally:
            if not lock.locked():
                self._locks.pop(digest, None)
        return final

    async def materialize(self, app_dir: Path, artifacts: Iterable[Mapping[str, str]]) -> None:
        """Ensure every ``{name, digest}`` is cached, then place them all in ``app_dir``."""
        placed = [(a["name"], await self.ensure(a["digest"])) for a in artifacts]
        await asyncio.to_thread(materialize, app_dir, placed)

    async def _download(self, digest: str, final: Path) -> Path:
        tmp_dir = self.root / "tmp"
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        tmp = tmp_dir / f"{final.name}.{uuid.uuid4().hex}"
        try:
            await self._fetch(digest, tmp)
            actual = await asyncio.to_thread(_sha256_file, tmp)
            if actual != digest:
                raise ArtifactMismatch(
                    f"artifact verification failed: expected {digest}, got {actual}; "
                    "the download was discarded (re-push the artifact or fix the App's digest)"
                )
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return final


def check_artifact_name(name: str) -> str:
    """A relative path inside the app directory that cannot escape it or hide runtime files."""
    parts = name.split("/")
    if not name or name.startswith("/") or "" in parts or ".." in parts or "." in parts:
        raise ValueError(f"artifact name {name!r} must be a relative path without '..'")
    if parts[0] in RESERVED_NAMES or parts[0].startswith(".installed-"):
        raise ValueError(f"artifact name {name!r} clashes with the runtime's own {parts[0]!r}")
    return name


def materialize(app_dir: Path, artifacts: Iterable[tuple[str, Path]]) -> None:
    """Place each cached file at ``app_dir/<name>`` (hard link, else a copy).

    Artifacts placed by an earlier call but no longer listed are removed; the list of
    placed names is kept in ``app_dir/.artifacts``.
    """
    wanted = {check_artifact_name(name): src for name, src in artifacts}
    manifest = app_dir / ".artifacts"
    previous = manifest.read_text().split("\n") if manifest.exists() else []
    for old in previous:
        if old and old not in wanted:
            with contextlib.suppress(FileNotFoundError, ValueError):
                (app_dir / check_artifact_name(old)).unlink()
    for name, src in wanted.items():
        dest = app_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
    manifest.write_text("\n".join(sorted(wanted)))
