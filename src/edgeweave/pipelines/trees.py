"""File trees: a commit's files as sorted paths with their content digests and sizes.

A :class:`FileTree` is the one shape every part of the engine reads a commit in: globs match
its sorted ``paths``, datums hash its ``digests``, the runner materialises its files. The three
lists are parallel and sorted by path, so a directory is a contiguous range and a lookup is a
bisection. :func:`diff_paths` gives the paths that differ between two trees (a merge walk).

Paths are absolute (``/dir/file``), ``/``-separated, without empty, ``.`` or ``..`` segments;
:func:`normalize_path` is the one place that checks and cleans a path a user gave.

Pure: no I/O. This module must not know where trees are stored.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgeweave.errors import InvalidObject

MAX_PATH_CHARS = 4096


def normalize_path(path: str) -> str:
    """``path`` as an absolute file path (``a//b/`` → ``/a/b``); raises :class:`InvalidObject`
    for the root, ``.``/``..`` segments, NUL characters or paths over 4096 characters."""
    if "\x00" in path:
        raise InvalidObject(f"path {path!r} contains a NUL character")
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise InvalidObject(f"path {path!r} names no file (the root is a directory)")
    if any(s in (".", "..") for s in segments):
        raise InvalidObject(f"path {path!r} may not contain '.' or '..' segments")
    clean = "/" + "/".join(segments)
    if len(clean) > MAX_PATH_CHARS:
        raise InvalidObject(f"path {clean[:60]!r}... is longer than {MAX_PATH_CHARS} characters")
    return clean


def normalize_dir(path: str) -> str:
    """A directory path: ``/`` for the root, else like :func:`normalize_path`."""
    return "/" if not path.strip("/") else normalize_path(path)


@dataclass(frozen=True)
class FileTree:
    """The files of one commit; ``paths`` sorted and unique, the other lists parallel."""

    paths: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, int]]) -> FileTree:
        """From ``(path, digest, size)`` in any order (a later duplicate path wins)."""
        latest = {path: (digest, size) for path, digest, size in entries}
        paths = sorted(latest)
        return cls(paths, [latest[p][0] for p in paths], [latest[p][1] for p in paths])

    @classmethod
    def from_sorted(cls, rows: Iterable[tuple[str, str, int]]) -> FileTree:
        """From rows already sorted by path (a database query with ``ORDER BY path``)."""
        paths: list[str] = []
        digests: list[str] = []
        sizes: list[int] = []
        for path, digest, size in rows:
            paths.append(path)
            digests.append(digest)
            sizes.append(size)
        return cls(paths, digests, sizes)

    def __len__(self) -> int:
        return len(self.paths)

    def index(self, path: str) -> int | None:
        """The position of ``path``, or None."""
        i = bisect.bisect_left(self.paths, path)
        return i if i < len(self.paths) and self.paths[i] == path else None

    def digest_of(self, path: str) -> str | None:
        i = self.index(path)
        return None if i is None else self.digests[i]

    def dir_range(self, directory: str) -> tuple[int, int]:
        """The range of ``paths`` under ``directory`` (``/`` is everything)."""
        if directory == "/":
            return 0, len(self.paths)
        lo = bisect.bisect_left(self.paths, directory + "/")
        return lo, bisect.bisect_left(self.paths, directory + "0", lo)

    def total_size(self) -> int:
        return sum(self.sizes)


def diff_paths(old: FileTree, new: FileTree) -> list[str]:
    """Sorted paths added, removed or whose content changed from ``old`` to ``new``."""
    out: list[str] = []
    i = j = 0
    op, od, np_, nd = old.paths, old.digests, new.paths, new.digests
    while i < len(op) and j < len(np_):
        a, b = op[i], np_[j]
        if a == b:
            if od[i] != nd[j]:
                out.append(a)
            i += 1
            j += 1
        elif a < b:
            out.append(a)
            i += 1
        else:
            out.append(b)
            j += 1
    out.extend(op[i:])
    out.extend(np_[j:])
    return out
