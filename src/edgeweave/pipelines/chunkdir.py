"""Large chunks as files named by their sha256: ``ROOT/ab/cdef…`` (content-addressed, dedup).

A chunk is written once: to a temporary file in ``ROOT/tmp``, flushed (and fsynced unless
told not to), then renamed into place, so a reader never sees half a chunk and a crash leaves
at most a stray temporary file (removed on the next :meth:`ChunkDir.sweep_tmp`). Writing a
chunk that already exists is a no-op: that is the dedup. Chunk files are read-only (0o444).
A read verifies the sha256, so a corrupted chunk is reported, never served.

Every method blocks on the file system: call them from a worker thread
(``asyncio.to_thread``), never on the event loop. This module must not know about repos,
commits or the database; deciding which chunks are dead is the store's job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from edgeweave.errors import NotFound, StoreError


class ChunkDir:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._fsync = fsync

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def write(self, digest: str, data: bytes | memoryview) -> bool:
        """Store ``data`` under ``digest`` (the caller hashed it); False if it was there."""
        final = self.path(digest)
        if final.exists():
            return False
        self._tmp.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(exist_ok=True)
        tmp = self._tmp / f"{digest[:16]}.{uuid.uuid4().hex}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write chunk {digest[:12]}: {e.strerror or e}") from e
        return True

    def read(self, digest: str) -> bytes:
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"chunk {digest[:12]} is missing from {self.root}") from None
        except OSError as e:
            raise StoreError(f"cannot read chunk {digest[:12]}: {e.strerror or e}") from e
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"chunk {digest[:12]} in {self.root} is corrupt (sha256 mismatch)")
        return data

    def delete(self, digest: str) -> int:
        """Remove a chunk; the bytes it held (0 when it was not there)."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        except OSError as e:
            raise StoreError(f"cannot delete chunk {digest[:12]}: {e.strerror or e}") from e
        return size

    def sweep_tmp(self) -> int:
        """Remove temporary files a crashed writer left; how many."""
        if not self._tmp.exists():
            return 0
        removed = 0
        for entry in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
        return removed
