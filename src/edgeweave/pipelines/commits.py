"""What the repo store hands out: commits, files, GC and copy reports (plain data).

Commit ids are 32 lowercase hex characters (like Pachyderm's). Digests are 64 lowercase hex
characters of sha256: a file's ``digest`` is the sha256 of its whole content, each of its
chunks is stored under the sha256 of the chunk.

This module must not do I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from edgeweave.errors import InvalidObject

Origin = Literal["user", "auto"]  # auto: written by a pipeline
COMMIT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
DIGEST_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def check_commit_id(commit_id: str) -> str:
    if not COMMIT_ID_RE.match(commit_id):
        raise InvalidObject(f"commit id {commit_id!r} is not 32 lowercase hex characters")
    return commit_id


@dataclass(frozen=True)
class CommitInfo:
    id: str
    repo: str
    branch: str
    parent: str | None
    origin: Origin
    created_at: float
    finished_at: float | None
    description: str = ""
    provenance: tuple[str, ...] = ()  # "repo@commit" of the inputs, and "pipeline@version"

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True)
class RepoInfo:
    name: str
    description: str
    created_at: float
    branches: dict[str, str | None]  # branch → head commit (open or finished)


@dataclass(frozen=True)
class FileInfo:
    path: str
    digest: str  # sha256 of the content ("" for a directory)
    size: int  # bytes; for a directory, of every file under it
    is_dir: bool = False


@dataclass(frozen=True)
class GCReport:
    chunks_deleted: int
    bytes_freed: int  # chunk bytes no longer stored (files unlinked + packed rows dropped)


@dataclass
class CopyReport:
    """What a commit copy moved: only chunks the destination lacked travel."""

    commit: str
    chunks_total: int = 0
    chunks_moved: int = 0
    bytes_moved: int = 0
    skipped: list[str] = field(default_factory=list)  # digests the destination already had
