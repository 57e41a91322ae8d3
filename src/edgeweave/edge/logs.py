"""Log streams the cloud asks for (`edgeweave logs APP --node N [-f]`), read from app log files.

Each request is one named task that sends the last ``tail_lines`` lines of the app's log and,
with ``follow``, new lines as the file grows (checked a few times a second; a rotated file is
reopened). Streams are bounded in number; one :class:`LogStreams` belongs to one link session,
which cancels all of its streams when it ends.

Frames are cut by their encoded size, at most half the link's frame limit (a longer line is
cut short), never by a line count alone: an oversize frame would close the whole link (1009).
The app name comes from the network: it is checked against the runtime's name rules before it
becomes a path. Files are read in a worker thread, never on the event loop.

Must not: send a frame over the limit, or read a file outside the app's log directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any

from edgeweave.edge.runtime.spec import is_valid_name, is_valid_namespace
from edgeweave.errors import InvalidObject, LinkError
from edgeweave.protocol import codec
from edgeweave.protocol import messages as m

log = logging.getLogger(__name__)

MAX_STREAMS = 16
FOLLOW_POLL_S = 0.25
DEFAULT_TAIL_LINES = 100
MAX_LINE_CHARS = 16_000
_MAX_BYTES_PER_CHAR = 6  # the worst JSON escape of one character: \u001f
_ENVELOPE_SLACK = 64  # the envelope's own size may vary by a few bytes (ids, eof)

Send = Callable[[m.Message], Coroutine[Any, Any, None]]


def _encoded_len(line: str) -> int:
    # as the codec writes a string (ensure_ascii=False), plus the comma between lines
    return len(json.dumps(line, ensure_ascii=False).encode()) + 1


def chunk_lines(lines: Iterable[str], budget_bytes: int) -> Iterator[tuple[str, ...]]:
    """Consecutive groups of ``lines`` whose encoded JSON list fits ``budget_bytes``; a line
    too long for one group on its own is cut short."""
    longest = max((budget_bytes - 3) // _MAX_BYTES_PER_CHAR, 1)
    chunk: list[str] = []
    used = 2  # the brackets
    for text in lines:
        line, size = text, _encoded_len(text)
        if 2 + size > budget_bytes:
            line = text[:longest]
            size = _encoded_len(line)
        if chunk and (used + size > budget_bytes or len(chunk) >= m.MAX_LOG_LINES):
            yield tuple(chunk)
            chunk, used = [], 2
        chunk.append(line)
        used += size
    if chunk:
        yield tuple(chunk)


def _clean(line: str) -> str:
    return line.rstrip("\n")[:MAX_LINE_CHARS]


def _read_tail(path: Path, tail: int) -> tuple[list[str], int] | None:
    """The last ``tail`` lines of ``path`` and the offset after them; None when no file."""
    try:
        if tail <= 0:
            return [], os.stat(path).st_size
        with open(path, errors="replace") as f:
            last: deque[str] = deque((_clean(line) for line in f), maxlen=tail)
            return list(last), f.tell()
    except FileNotFoundError:
        return None


def _read_from(path: Path, position: int) -> tuple[list[str], int]:
    """The lines of ``path`` after ``position`` (from the start when it shrank: rotated)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return [], 0
    if size < position:  # rotated (copy-truncate): start over
        position = 0
    if size == position:
        return [], position
    with open(path, errors="replace") as f:
        f.seek(position)
        return [_clean(line) for line in f], f.tell()


class LogStreams:
    """The log streams of one link session."""

    def __init__(
        self,
        log_path: Callable[[str, str], Path],
        *,
        max_frame_bytes: int = codec.DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._log_path = log_path
        self._budget = max_frame_bytes // 2
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, req: m.LogsRequest, send: Send) -> None:
        ns, name = req.app.namespace, req.app.name
        if not (is_valid_namespace(ns) and is_valid_name(name)):
            await send(
                m.Error(
                    parent_id=req.id,
                    reason=InvalidObject.reason,
                    message=f"{ns!r}/{name!r} is not a valid app name",
                )
            )
            return
        if len(self._tasks) >= MAX_STREAMS:
            await send(
                m.Error(
                    parent_id=req.id,
                    reason="TooManyRequests",
                    message=f"at most {MAX_STREAMS} log streams per node",
                )
            )
            return
        self.cancel(req.stream_id)  # a repeated stream id replaces the earlier stream
        path = self._log_path(ns, name)
        task = asyncio.create_task(self._stream(req, path, send), name=f"logs-{req.stream_id}")
        self._tasks[req.stream_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._tasks.get(req.stream_id) is done:
                del self._tasks[req.stream_id]

        task.add_done_callback(forget)

    def cancel(self, stream_id: str) -> None:
        task = self._tasks.get(stream_id)
        if task is not None:
            task.cancel()

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _send_lines(self, sid: str, lines: list[str], send: Send) -> None:
        envelope = len(codec.encode(m.LogsData(stream_id=sid, eof=False)).encode())
        budget = self._budget - envelope - _ENVELOPE_SLACK
        for chunk in chunk_lines(lines, budget):
            await send(m.LogsData(stream_id=sid, lines=chunk))

    async def _stream(self, req: m.LogsRequest, path: Path, send: Send) -> None:
        try:
            await self._stream_lines(req, path, send)
        except LinkError as e:  # the session ended: so does the stream, quietly
            log.debug("log stream %s ended with its link: %s", req.stream_id, e)
        except OSError as e:
            log.warning("log stream %s: cannot read %s: %s", req.stream_id, path, e)
            with contextlib.suppress(LinkError):
                await send(m.LogsData(stream_id=req.stream_id, lines=(f"({e})",), eof=True))

    async def _stream_lines(self, req: m.LogsRequest, path: Path, send: Send) -> None:
        sid = req.stream_id
        tail = req.tail_lines if req.tail_lines is not None else DEFAULT_TAIL_LINES
        found = await asyncio.to_thread(_read_tail, path, tail)
        if found is None:
            await send(m.LogsData(stream_id=sid, lines=(f"(no log yet at {path.name})",), eof=True))
            return
        lines, position = found
        await self._send_lines(sid, lines, send)
        if not req.follow:
            await send(m.LogsData(stream_id=sid, eof=True))
            return
        while True:
            await asyncio.sleep(FOLLOW_POLL_S)  # a file has no change event in the stdlib
            new, position = await asyncio.to_thread(_read_from, path, position)
            if new:
                await self._send_lines(sid, new, send)
