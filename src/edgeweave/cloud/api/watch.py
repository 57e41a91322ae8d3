"""Watch streams: newline-delimited JSON events from the store, with idle bookmarks.

The watch is opened before the response starts, so a too-old resourceVersion is an ordinary
410 ``Gone`` answer rather than a broken stream. One pump task per stream moves events from
the store into a small bounded queue; the response body drains it and emits a BOOKMARK when
the stream has been idle. The number of concurrent streams is bounded (429 past it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from starlette.responses import Response, StreamingResponse

from edgeweave.cloud.api.deps import ApiDeps
from edgeweave.cloud.store.base import Watch, WatchEvent, WatchFilter
from edgeweave.errors import BadRequest, EdgeweaveError, TooManyRequests

QUEUE_EVENTS = 256
_END = object()


def _line(event_type: str, obj: object) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def watch_response(
    deps: ApiDeps, flt: WatchFilter, since: int | None, bookmark_s: float
) -> Response:
    if deps.watch_slots.locked():
        raise TooManyRequests(
            f"{deps.settings.max_watches} watch streams are open; close one or retry later"
        )
    await deps.watch_slots.acquire()
    stack = AsyncExitStack()
    stack.callback(deps.watch_slots.release)
    try:
        current = await deps.store.current_resource_version()
        if since is not None and since > current:
            raise BadRequest(
                f"resourceVersion {since} is newer than the store's current {current}; "
                "watch from a version you have seen"
            )
        start = current if since is None else since
        watch = await stack.enter_async_context(deps.store.open_watch(start, flt))
    except BaseException:
        await stack.aclose()
        raise
    return StreamingResponse(
        _stream(watch, stack, start, bookmark_s), media_type="application/x-ndjson"
    )


async def _stream(
    watch: Watch, stack: AsyncExitStack, start: int, bookmark_s: float
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[WatchEvent | object] = asyncio.Queue(QUEUE_EVENTS)

    async def pump() -> None:
        # not in a `finally`: a cancelled pump (the client went away) must not block on a
        # full queue that nobody drains any more
        try:
            async for event in watch:
                await queue.put(event)
        except EdgeweaveError as e:  # Gone, StoreUnavailable: the client learns why it ended
            await queue.put(e)
            return
        await queue.put(_END)

    pump_task = asyncio.create_task(pump(), name="api-watch-pump")
    last_rv = start
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=bookmark_s)
            except TimeoutError:
                yield _line("BOOKMARK", {"metadata": {"resourceVersion": str(last_rv)}})
                continue
            if item is _END:
                return
            if isinstance(item, EdgeweaveError):
                status = {"kind": "Status", "reason": item.reason, "message": item.message}
                yield _line("ERROR", status)
                return
            assert isinstance(item, WatchEvent)
            last_rv = item.resource_version
            yield _line(item.type, item.object)
    finally:
        pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task
        await stack.aclose()
