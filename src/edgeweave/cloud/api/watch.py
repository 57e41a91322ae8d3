"""Watch streams: newline-delimited JSON events from the store, with idle bookmarks.

The watch is opened before the response starts, so a too-old resourceVersion is an ordinary
410 ``Gone`` answer rather than a broken stream. The response body reads the watch itself
(no task or queue between them: an event is written a loop turn after the store's
notification wakes it, behind the node hub's push) and emits a BOOKMARK when the stream has
been idle. A client that reads slowly holds the stream back, not the store: the change log
keeps what it has not read yet. The number of concurrent streams is bounded (429 past it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from starlette.responses import Response, StreamingResponse

from edgeweave.cloud.api.deps import ApiDeps
from edgeweave.cloud.store.base import Watch, WatchEvent, WatchFilter
from edgeweave.errors import BadRequest, EdgeweaveError, TooManyRequests


def _line(event_type: str, obj: object) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _event_line(event: WatchEvent) -> bytes:
    """The event's line around the object's JSON text as the store keeps it (not decoded
    and encoded again)."""
    return f'{{"type":"{event.type}","object":{event.text}}}\n'.encode()


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
    last_rv = start
    try:
        while True:
            try:
                event = await watch.next_event(bookmark_s)
            except StopAsyncIteration:
                return
            except EdgeweaveError as e:  # Gone, StoreUnavailable: the client learns why it ended
                status = {"kind": "Status", "reason": e.reason, "message": e.message}
                yield _line("ERROR", status)
                return
            if event is None:
                yield _line("BOOKMARK", {"metadata": {"resourceVersion": str(last_rv)}})
                continue
            last_rv = event.resource_version
            # one loop turn before the write: the commit that woke this watch also woke the
            # node hub, whose push to the object's node goes first (it is on its way to a
            # device; a watcher reports). On 2 shared cores each write wakes its reader.
            await asyncio.sleep(0)
            yield _event_line(event)
    finally:
        await stack.aclose()
