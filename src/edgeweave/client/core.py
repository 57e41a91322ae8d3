"""The part of a client that does not care whether it is sync or async.

:class:`ClientCore` holds the config, the default namespace and the cached discovery document,
resolves kinds and namespaces, and turns answers into values. :class:`~.http.Client` and
:class:`~.async_http.AsyncClient` add only the sending. No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edgeweave.client import requests as rq
from edgeweave.client.config import ClientConfig
from edgeweave.client.discovery import Discovery, KindRef
from edgeweave.client.responses import decode_body, error_from_answer
from edgeweave.client.transport import Settings, describe
from edgeweave.errors import EdgeweaveError, ProtocolError

KindArg = str | KindRef


class ClientCore:
    def __init__(self, config: ClientConfig, settings: Settings | None = None) -> None:
        self.config = config
        self.settings = settings or Settings()
        self.namespace = config.namespace or "default"
        self._discovery: Discovery | None = None

    @property
    def server(self) -> str:
        return self.config.server

    def _ns(self, ref: KindRef, namespace: str | None) -> str | None:
        """The namespace of a single-object request: the given one, else the default."""
        if not ref.namespaced:
            return None
        return namespace or self.namespace

    def _object_request(
        self, discovery: Discovery, obj: Mapping[str, Any], verb: str
    ) -> tuple[KindRef, rq.Request]:
        ref = discovery.for_object(obj)
        ns = rq.object_namespace(ref, obj, self.namespace)
        builder = rq.create if verb == "create" else rq.update
        return ref, builder(ref, obj, ns)

    def _decode(self, request: rq.Request, status: int, content: bytes) -> Any:
        return decode_body(status, content, describe(self.server, request))

    def _decode_object(self, request: rq.Request, status: int, content: bytes) -> dict[str, Any]:
        body = self._decode(request, status, content)
        if not isinstance(body, dict):
            raise ProtocolError(f"{describe(self.server, request)}: expected a JSON object")
        return body

    def _error(self, request: rq.Request, status: int, content: bytes) -> EdgeweaveError:
        return error_from_answer(status, content, describe(self.server, request))


def check_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event, or the error an ``ERROR`` event carries (a Status object) raised."""
    if event["type"] != "ERROR":
        return event
    status = event["object"]
    code = status.get("code") if isinstance(status.get("code"), int) else 500
    raise error_from_answer(code, json.dumps(status).encode(), "watch")


def list_items(body: Any) -> tuple[list[dict[str, Any]], str, str]:
    """``(items, continue token, resourceVersion)`` of a list answer."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ProtocolError("a list answer has no `items` list")
    meta = body.get("metadata") or {}
    return body["items"], str(meta.get("continue") or ""), str(meta.get("resourceVersion") or "")
