"""`GET .../namespaces/{ns}/apps/{name}/log?node=N[&follow=true][&tailLines=100]`: an app's log
on one node, relayed from the agent over its link (like `kubectl logs` through the kubelet).

The stream is opened before the response starts, so an unconnected node is a plain 503 answer.
The body is ``text/plain``, one log line per line; it ends when the agent sends the end of
the log (or, with ``follow``, when the client goes away or the node disconnects).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from edgeweave.errors import BadRequest, EdgeweaveError, LinkError

# (node, namespace, app, tail_lines, follow) -> async CM yielding chunks of lines
LogSource = Callable[
    [str, str, str, int | None, bool], AbstractAsyncContextManager[AsyncIterable[list[str]]]
]
MAX_TAIL_LINES = 100_000


def build_logs_router(source: LogSource) -> APIRouter:
    router = APIRouter()

    @router.get("/apis/edgeweave.io/v1/namespaces/{namespace}/apps/{name}/log", tags=["apps"])
    async def app_log(
        request: Request,
        namespace: str,
        name: str,
        node: str,
        follow: bool = False,
        tailLines: int | None = None,
    ) -> Response:
        """An app's log on one node (``node`` is required: an app runs on many)."""
        if tailLines is not None and not 0 <= tailLines <= MAX_TAIL_LINES:
            raise BadRequest(f"tailLines must be between 0 and {MAX_TAIL_LINES}")
        stack = AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(
                source(node, namespace, name, tailLines, follow)
            )
        except BaseException:
            await stack.aclose()
            raise
        return StreamingResponse(_lines(chunks, stack), media_type="text/plain; charset=utf-8")

    return router


async def _lines(chunks: AsyncIterable[list[str]], stack: AsyncExitStack) -> AsyncIterator[bytes]:
    try:
        async for lines in chunks:
            if lines:
                yield ("\n".join(lines) + "\n").encode()
    except LinkError:  # the node went away: the log simply ends
        pass
    except EdgeweaveError as e:  # the node refused (bad name, too many streams): say why
        yield f"error: {e.message}\n".encode()
    finally:
        await stack.aclose()
