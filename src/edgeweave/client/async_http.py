"""The asyncio client of the public API, over ``httpx.AsyncClient`` on the h11 transport of
:mod:`.h11pool` (any httpx transport can be passed instead).

The same methods as :class:`~.http.Client` with the same meaning, as coroutines; ``watch`` is an
async iterator. Requests, answers and errors go through the same shared modules, so the two
clients cannot drift apart. Close it with ``await client.aclose()`` or ``async with``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from types import TracebackType
from typing import Any, cast

from edgeweave.client import requests as rq
from edgeweave.client._httpx import httpx
from edgeweave.client.async_pipelines import AsyncPipelineMethods
from edgeweave.client.config import ClientConfig
from edgeweave.client.core import KindArg, check_event, list_items
from edgeweave.client.discovery import Discovery, KindRef
from edgeweave.client.h11pool import AsyncH11Transport
from edgeweave.client.ndjson import EventDecoder
from edgeweave.client.transport import (
    Settings,
    build,
    client_kwargs,
    translated_errors,
    watch_timeout,
)


class AsyncClient(AsyncPipelineMethods):
    def __init__(
        self,
        config: ClientConfig,
        *,
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config, settings)
        kwargs = client_kwargs(config, self.settings)
        self._transport = transport or AsyncH11Transport(kwargs["verify"])
        self._http = httpx.AsyncClient(**kwargs, transport=self._transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _exchange(self, http_request: httpx.Request) -> httpx.Response:
        """``http_request`` (built by the httpx client: base URL, headers, timeouts) sent on
        its transport directly; the body is not read yet. The client's send adds layers this
        client does not use (auth flows, redirects, a cookie jar) that cost as much CPU as
        the exchange itself."""
        if self._http.is_closed:
            raise RuntimeError("the client is closed")  # as httpx would say
        answer = await self._transport.handle_async_request(http_request)
        answer.request = http_request
        return answer

    async def _answer(self, request: rq.Request) -> httpx.Response:
        """The whole answer to ``request``."""
        with translated_errors(self.server, request):
            answer = await self._exchange(build(self._http, request))
            try:
                await answer.aread()
            finally:
                await answer.aclose()
            return answer

    async def _send(self, request: rq.Request) -> Any:
        answer = await self._answer(request)
        return self._decode(request, answer.status_code, answer.content)

    async def _object(self, request: rq.Request) -> dict[str, Any]:
        answer = await self._answer(request)
        return self._decode_object(request, answer.status_code, answer.content)

    async def _ref(self, kind: KindArg) -> KindRef:
        return kind if isinstance(kind, KindRef) else (await self.discover()).resolve(kind)

    async def discover(self) -> Discovery:
        if self._discovery is None:
            body = await self._send(rq.Request("GET", "/apis"))
            self._discovery = Discovery.from_document(body)
        return self._discovery

    async def version(self) -> dict[str, Any]:
        body = await self._send(rq.Request("GET", "/version"))
        return body if isinstance(body, dict) else {"version": str(body)}

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        _, request = self._object_request(await self.discover(), obj, "create")
        return await self._object(request)

    async def get(self, kind: KindArg, name: str, namespace: str | None = None) -> dict[str, Any]:
        ref = await self._ref(kind)
        return await self._object(rq.get(ref, name, self._ns(ref, namespace)))

    async def list(
        self,
        kind: KindArg,
        namespace: str | None = None,
        selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> dict[str, Any]:
        request = rq.list_(await self._ref(kind), namespace, selector, limit, continue_)
        body = await self._send(request)
        list_items(body)
        return dict(body)

    async def list_all(
        self, kind: KindArg, namespace: str | None = None, selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        ref = await self._ref(kind)
        items, token, version = list_items(await self.list(ref, namespace, selector))
        while token:
            page, token, _ = list_items(await self.list(ref, namespace, selector, continue_=token))
            items.extend(page)
        return items, version

    async def update(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        _, request = self._object_request(await self.discover(), obj, "update")
        return await self._object(request)

    async def patch(
        self, kind: KindArg, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        ref = await self._ref(kind)
        return await self._object(rq.patch(ref, name, self._ns(ref, namespace), patch))

    async def delete(
        self,
        kind: KindArg,
        name: str,
        namespace: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        ref = await self._ref(kind)
        request = rq.delete(ref, name, self._ns(ref, namespace), resource_version)
        return await self._object(request)

    async def watch(
        self,
        kind: KindArg,
        namespace: str | None = None,
        resource_version: str | None = None,
        selector: str | None = None,
        name: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events ``{"type", "object"}``; ``namespace=None`` watches every namespace."""
        ref = await self._ref(kind)
        ns = self._ns(ref, namespace) if name else namespace
        request = rq.watch(ref, ns, resource_version, selector, name)
        decoder = EventDecoder(self.settings.max_event_bytes)
        http_request = build(self._http, request)
        http_request.extensions["timeout"] = watch_timeout(self.settings).as_dict()
        with translated_errors(self.server, request):
            answer = await self._exchange(http_request)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, await answer.aread())
                # the body as the transport hands it over, unless something encoded it
                chunks: AsyncIterable[bytes] = (
                    answer.aiter_bytes()
                    if "content-encoding" in answer.headers
                    else cast(httpx.AsyncByteStream, answer.stream)
                )
                async for chunk in chunks:
                    for event in decoder.feed(chunk):
                        yield check_event(event)
                for event in decoder.close():
                    yield check_event(event)
            finally:
                await answer.aclose()

    # -- device twins (docs/devices.md, "Twins from the cloud") ------------------------------

    async def get_twin(self, namespace: str | None, name: str) -> dict[str, Any]:
        """A Device's twin view (see :meth:`.http.Client.get_twin`)."""
        return await self._object(rq.get_twin(namespace or self.namespace, name))

    async def set_twin(
        self, namespace: str | None, name: str, desired: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Set desired values; returns the new view (see :meth:`.http.Client.set_twin`)."""
        return await self._object(rq.set_twin(namespace or self.namespace, name, desired))

    async def twin_history(
        self,
        namespace: str | None,
        name: str,
        property_name: str | None = None,
        *,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Reported values ``{"property", "value", "timestamp"}`` (Unix ms), oldest first."""
        request = rq.twin_history(namespace or self.namespace, name, property_name, since_ms, limit)
        return list((await self._object(request)).get("items") or [])
