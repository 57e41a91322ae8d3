"""What the pipeline commands share: ``repo@ref:/path`` arguments, sizes, times, progress.

``images``, ``images@master``, ``images@master:/a.txt``, ``images@3f2a...:/dir/`` — as pachctl
writes them. The ref is a branch name or a commit id and defaults to ``master``. Pure string
work plus the progress line (written to a stream it is given); no client here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from edgeweave.cli.context import UsageError

DEFAULT_BRANCH = "master"
NONE = "<none>"


@dataclass(frozen=True)
class RepoRef:
    repo: str
    ref: str  # a branch name or a commit id
    path: str | None  # None when the argument named no path

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}" + (f":{self.path}" if self.path is not None else "")


def parse_ref(text: str, *, need_path: bool = False) -> RepoRef:
    """``repo[@ref][:/path]``; UsageError with an example when it is not."""
    head, sep, path = text.partition(":")
    repo, _, ref = head.partition("@")
    if not repo or (sep and not path) or "/" in repo:
        raise UsageError(f"{text!r} is not REPO@BRANCH:/PATH (e.g. images@master:/a.txt)")
    if need_path and not sep:
        raise UsageError(f"{text!r} names no file: write REPO@BRANCH:/PATH (images@master:/a.txt)")
    if sep and not path.startswith("/"):
        path = "/" + path
    return RepoRef(repo, ref or DEFAULT_BRANCH, path if sep else None)


def format_bytes(size: Any) -> str:
    """``512 B``, ``1.5 KiB``, ``23.0 MiB``, ``2.1 GiB``."""
    if not isinstance(size, int | float) or isinstance(size, bool):
        return NONE
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns


def format_duration(seconds: Any) -> str:
    """``45ms``, ``3.2s``, ``4m10s``, ``2h05m``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def format_ago(when: Any, now: float | None = None) -> str:
    """A Unix time as ``5s ago``, ``3m ago``..."""
    from edgeweave.cli.output import format_age

    if not isinstance(when, int | float) or isinstance(when, bool):
        return NONE
    return format_age((time.time() if now is None else now) - when) + " ago"


def format_time(when: Any) -> str:
    """A Unix time as RFC 3339 UTC to the second."""
    if not isinstance(when, int | float) or isinstance(when, bool):
        return NONE
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_text(done: int, total: int, label: str, width: int = 24) -> str:
    """``[##########--------------]  42%  9.8 MiB/23.0 MiB  big.bin``."""
    share = done / total if total else 1.0
    filled = int(share * width)
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {share:4.0%}  {format_bytes(done)}/{format_bytes(total)}  {label}"


class Progress:
    """A progress line on ``stream`` (redrawn at most every ``interval_s``), or nothing when
    ``enabled`` is false (output that is not a terminal)."""

    def __init__(
        self, stream: IO[str], total: int, label: str, *, enabled: bool, interval_s: float = 0.1
    ) -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._enabled = enabled
        self._interval_s = interval_s
        self._done = 0
        self._drawn_at = 0.0

    def advance(self, count: int) -> None:
        self._done += count
        now = time.monotonic()
        if self._enabled and now - self._drawn_at >= self._interval_s:
            self._drawn_at = now
            self._stream.write("\r" + progress_text(self._done, self._total, self._label))
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\r" + progress_text(self._done, self._total, self._label) + "\n")
            self._stream.flush()


def print_detail(
    value: dict[str, Any], output: str, describe: Callable[[dict[str, Any]], str] | None = None
) -> None:
    """One object as ``json``, ``yaml``, or ``text`` through ``describe``."""
    from edgeweave.cli import output as out

    if output == "json":
        print(out.to_json(value))
    elif output == "yaml" or describe is None:
        print(out.to_yaml(value).rstrip("\n"))
    else:
        print(describe(value))
