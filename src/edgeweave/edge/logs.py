"""Log streams the cloud asks for (`edgeweave logs APP --node N [-f]`), read from app log files.

Each request is one named task that sends the last ``tail_lines`` lines of the app's log and,
with ``follow``, new lines as the file grows (checked a few times a second; a rotated file is
reopened). Streams are bounded in number; all are cancelled when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from edgeweave.protocol import messages as m

MAX_STREAMS = 16
FOLLOW_POLL_S = 0.25
LINES_PER_FRAME = 500
MAX_LINE_CHARS = 16_000

Send = Callable[[m.Message], Coroutine[Any, Any, None]]


class LogStreams:
    def __init__(self, log_path: Callable[[str, str], Path]) -> None:
        self._log_path = log_path
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, req: m.LogsRequest, send: Send) -> None:
        if len(self._tasks) >= MAX_STREAMS:
            await send(
                m.Error(
                    parent_id=req.id,
                    reason="TooManyRequests",
                    message=f"at most {MAX_STREAMS} log streams per node",
                )
            )
            return
        path = self._log_path(req.app.namespace, req.app.name)
        task = asyncio.create_task(self._stream(req, path, send), name=f"logs-{req.stream_id}")
        self._tasks[req.stream_id] = task

        def forget(_: asyncio.Task[None]) -> None:
            self._tasks.pop(req.stream_id, None)

        task.add_done_callback(forget)

    def cancel(self, stream_id: str) -> None:
        task = self._tasks.get(stream_id)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _stream(self, req: m.LogsRequest, path: Path, send: Send) -> None:
        sid = req.stream_id
        if not path.exists():
            await send(m.LogsData(stream_id=sid, lines=(f"(no log yet at {path.name})",), eof=True))
            return
        tail = req.tail_lines if req.tail_lines is not None else 100
        with open(path, errors="replace") as f:
            last: deque[str] = deque(maxlen=max(tail, 0) or None)
            for line in f:
                last.append(line.rstrip("\n")[:MAX_LINE_CHARS])
            lines = list(last) if tail else []
            position = f.tell()
        for start in range(0, len(lines), LINES_PER_FRAME):
            await send(
                m.LogsData(stream_id=sid, lines=tuple(lines[start : start + LINES_PER_FRAME]))
            )
        if not req.follow:
            await send(m.LogsData(stream_id=sid, eof=True))
            return
        while True:
            await asyncio.sleep(FOLLOW_POLL_S)  # a file has no change event in the stdlib
            size = path.stat().st_size if path.exists() else 0
            if size < position:  # rotated (copy-truncate): start over
                position = 0
            if size == position:
                continue
            with open(path, errors="replace") as f:
                f.seek(position)
                new = [ln.rstrip("\n")[:MAX_LINE_CHARS] for ln in f.readlines()]
                position = f.tell()
            for start in range(0, len(new), LINES_PER_FRAME):
                await send(
                    m.LogsData(stream_id=sid, lines=tuple(new[start : start + LINES_PER_FRAME]))
                )
