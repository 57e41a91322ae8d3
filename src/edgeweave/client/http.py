"""The synchronous client of the public API, over ``httpx.Client``.

Objects are plain dicts in and out. Kinds may be given as anything a user types (``app``,
``apps``, ``App``, a short name) or as a :class:`KindRef`; they are resolved through the
server's discovery document, fetched once per client. Errors come back as edgeweave
exceptions (see :mod:`.responses`, :mod:`.transport`), never as httpx ones.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from edgeweave.client import requests as rq
from edgeweave.client._httpx import httpx
from edgeweave.client.config import ClientConfig, load_config
from edgeweave.client.core import KindArg, check_event, list_items
from edgeweave.client.discovery import Discovery, KindRef
from edgeweave.client.ndjson import EventDecoder
from edgeweave.client.pipelines import PipelineMethods
from edgeweave.client.transport import Settings, build, client_kwargs, translated_errors
from edgeweave.client.transport import watch_timeout as _watch_timeout


class Client(PipelineMethods):
    def __init__(
        self,
        config: ClientConfig,
        *,
        settings: Settings | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config, settings)
        self._http = httpx.Client(**client_kwargs(config, self.settings), transport=transport)

    @classmethod
    def from_config(cls, path: str | None = None) -> Client:
        """A client for the config found by the usual discovery order (see :mod:`.config`)."""
        return cls(load_config(path))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, request: rq.Request) -> Any:
        with translated_errors(self.server, request):
            answer = self._http.send(build(self._http, request))
        return self._decode(request, answer.status_code, answer.content)

    def _ref(self, kind: KindArg) -> KindRef:
        return kind if isinstance(kind, KindRef) else self.discover().resolve(kind)

    # -- the API ----------------------------------------------------------------------------

    def discover(self) -> Discovery:
        """The server's kinds (``GET /apis``), fetched once and cached."""
        if self._discovery is None:
            self._discovery = Discovery.from_document(self._send(rq.Request("GET", "/apis")))
        return self._discovery

    def version(self) -> dict[str, Any]:
        body = self._send(rq.Request("GET", "/version"))
        return body if isinstance(body, dict) else {"version": str(body)}

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        _, request = self._object_request(self.discover(), obj, "create")
        return self._object(request)

    def get(self, kind: KindArg, name: str, namespace: str | None = None) -> dict[str, Any]:
        ref = self._ref(kind)
        return self._object(rq.get(ref, name, self._ns(ref, namespace)))

    def list(
        self,
        kind: KindArg,
        namespace: str | None = None,
        selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> dict[str, Any]:
        """One page; ``namespace=None`` lists every namespace."""
        request = rq.list_(self._ref(kind), namespace, selector, limit, continue_)
        body = self._send(request)
        list_items(body)
        return dict(body)

    def list_all(
        self, kind: KindArg, namespace: str | None = None, selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Every item, following ``continue`` tokens; also the resourceVersion of the first page."""
        ref = self._ref(kind)
        items, token, version = list_items(self.list(ref, namespace, selector))
        while token:
            page, token, _ = list_items(self.list(ref, namespace, selector, continue_=token))
            items.extend(page)
        return items, version

    def update(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        _, request = self._object_request(self.discover(), obj, "update")
        return self._object(request)

    def patch(
        self, kind: KindArg, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        ref = self._ref(kind)
        return self._object(rq.patch(ref, name, self._ns(ref, namespace), patch))

    def delete(
        self,
        kind: KindArg,
        name: str,
        namespace: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        ref = self._ref(kind)
        return self._object(rq.delete(ref, name, self._ns(ref, namespace), resource_version))

    def watch(
        self,
        kind: KindArg,
        namespace: str | None = None,
        resource_version: str | None = None,
        selector: str | None = None,
        name: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Events ``{"type", "object"}`` until the server ends the stream.

        Close the iterator to stop. ``namespace=None`` watches every namespace.
        """
        ref = self._ref(kind)
        ns = self._ns(ref, namespace) if name else namespace
        request = rq.watch(ref, ns, resource_version, selector, name)
        decoder = EventDecoder(self.settings.max_event_bytes)
        http_request = build(self._http, request)
        http_request.extensions["timeout"] = _watch_timeout(self.settings).as_dict()
        with translated_errors(self.server, request):
            answer = self._http.send(http_request, stream=True)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, answer.read())
                for chunk in answer.iter_bytes():
                    for event in decoder.feed(chunk):
                        yield check_event(event)
                for event in decoder.close():
                    yield check_event(event)
            finally:
                answer.close()

    def _object(self, request: rq.Request) -> dict[str, Any]:
        with translated_errors(self.server, request):
            answer = self._http.send(build(self._http, request))
        return self._decode_object(request, answer.status_code, answer.content)

    # -- join tokens and objects (docs/design/edge-link.md §2, §4) ---------------------------

    def create_join_token(
        self, ttl_s: int | None = None, node: str | None = None
    ) -> dict[str, Any]:
        """``{"token", "expiresAt"}`` from ``POST /api/v1/tokens`` (admin)."""
        body: dict[str, Any] = {}
        if ttl_s is not None:
            body["ttlSeconds"] = ttl_s
        if node is not None:
            body["node"] = node
        return self._object(rq.Request("POST", "/api/v1/tokens", body=body))

    def object_size(self, digest: str) -> int | None:
        """The size of a stored object (``HEAD /api/v1/objects/DIGEST``), None when absent."""
        request = rq.Request("HEAD", f"/api/v1/objects/{digest}")
        with translated_errors(self.server, request):
            answer = self._http.send(build(self._http, request))
        if answer.status_code == 404:
            return None
        self._decode(request, answer.status_code, answer.content)
        return int(answer.headers.get("content-length", "0"))

    def put_object(self, digest: str, chunks: Iterable[bytes], size: int) -> dict[str, Any]:
        """Stream ``size`` bytes to ``PUT /api/v1/objects/DIGEST``; the cloud checks the hash."""
        request = rq.Request("PUT", f"/api/v1/objects/{digest}")
        http_request = self._http.build_request(
            "PUT",
            request.path,
            content=chunks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        with translated_errors(self.server, request):
            answer = self._http.send(http_request)
        return self._decode_object(request, answer.status_code, answer.content)

    def app_log(
        self,
        app: str,
        node: str,
        namespace: str | None = None,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
    ) -> Iterator[str]:
        """Lines of an app's log on ``node`` (relayed from the agent); ``follow`` streams."""
        ns = namespace or self.namespace
        params: dict[str, str] = {"node": node, "follow": "true" if follow else "false"}
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        request = rq.Request(
            "GET", f"/apis/edgeweave.io/v1/namespaces/{ns}/apps/{app}/log", params=params
        )
        http_request = build(self._http, request)
        http_request.extensions["timeout"] = _watch_timeout(self.settings).as_dict()
        with translated_errors(self.server, request):
            answer = self._http.send(http_request, stream=True)
            try:
                if answer.status_code != 200:
                    raise self._error(request, answer.status_code, answer.read())
                yield from answer.iter_lines()
            finally:
                answer.close()

    def events(
        self,
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        *,
        node: str | None = None,
        limit: int = 50,
    ) -> builtins.list[dict[str, Any]]:
        """Events nodes reported about objects (``GET /api/v1/events``), oldest first."""
        params = {"limit": str(limit)}
        for key, value in (
            ("kind", kind),
            ("namespace", namespace),
            ("name", name),
            ("node", node),
        ):
            if value is not None:
                params[key] = value
        answer = self._object(rq.Request("GET", "/api/v1/events", params=params))
        return list(answer.get("items") or [])

    # -- device twins (docs/devices.md, "Twins from the cloud") ------------------------------

    def get_twin(self, namespace: str | None, name: str) -> dict[str, Any]:
        """A Device's twin view: per property type, access mode, desired, reported,
        reportedAt (Unix ms), observedDesired; plus the device's state and lastOnlineTime."""
        return self._object(rq.get_twin(namespace or self.namespace, name))

    def set_twin(
        self, namespace: str | None, name: str, desired: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Set desired values (``{prop: "value"}``; None clears one); returns the new view.
        The cloud checks them against the DeviceModel (400 naming a bad property)."""
        return self._object(rq.set_twin(namespace or self.namespace, name, desired))

    def twin_history(
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
        return list(self._object(request).get("items") or [])
