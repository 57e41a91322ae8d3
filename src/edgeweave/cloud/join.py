"""Joining a node to the cloud, and renewing its certificate (docs/design/edge-link.md §2).

:class:`JoinService` checks a join request in this order — token valid (signature, CA pin,
expiry), token allows this node name, name not already joined (unless the token names it:
a re-join), CSR acceptable (``CN`` = node name), token not used before — then signs the
certificate and creates or updates the ``Node`` object. The token's ``jti`` is marked used
only once every check before it passed, so a refused request does not burn the token.

:func:`renew_node_certificate` is what the hub calls for a ``renew`` message: the node
authenticated by its current certificate gets a new one for the same name.

This module must not import the web framework (the router in :mod:`edgeweave.cloud.api.join`
is the HTTP side) and must not decide anything from a node's own claims about its identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.cloud.store._objects import now_rfc3339
from edgeweave.cloud.store.base import CloudStore, JSONObject
from edgeweave.cloud.tokens import MAX_TTL_S, JoinTokenIssuer
from edgeweave.errors import AlreadyExists, Forbidden, InvalidObject, NotFound, Unauthorized
from edgeweave.models import registry

NODE_API_VERSION = "edgeweave.io/v1"
DEFAULT_TOKEN_TTL_S = 3600


RESERVED_LABEL_DOMAIN = "edgeweave.io"  # node-supplied labels may not use it


@dataclass(frozen=True)
class JoinRequest:
    token: str
    node: str
    csr_pem: bytes
    labels: Mapping[str, str]
    addresses: Sequence[Mapping[str, str]]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JoinRequest:
        """Check the JSON body's shape (values are checked by :class:`JoinService`)."""
        token, node, csr = body.get("token"), body.get("node"), body.get("csr")
        for field, value in (("token", token), ("node", node), ("csr", csr)):
            if not isinstance(value, str) or not value:
                raise InvalidObject(f"{field} is required (a non-empty string)", field=field)
        assert isinstance(token, str) and isinstance(node, str) and isinstance(csr, str)
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise InvalidObject("labels must map strings to strings", field="labels")
        reserved = sorted(
            k for k in labels if "/" in k and k.split("/", 1)[0].endswith(RESERVED_LABEL_DOMAIN)
        )
        if reserved:
            # labels decide what a node receives: a node may not give itself the platform's own
            raise Forbidden(
                f"labels {', '.join(reserved)} are reserved for the cloud; an admin sets them "
                "on the Node (edgeweave apply / PATCH)"
            )
        addresses = body.get("addresses") or []
        if not isinstance(addresses, list) or not all(
            isinstance(a, dict)
            and isinstance(a.get("type"), str)
            and isinstance(a.get("address"), str)
            for a in addresses
        ):
            raise InvalidObject("addresses must be a list of {type, address}", field="addresses")
        return cls(token, node, csr.encode(), labels, addresses)


@dataclass(frozen=True)
class JoinResult:
    node: str
    certificate_pem: bytes
    ca_pem: bytes
    node_object: JSONObject


class JoinService:
    """Verifies join requests, signs node certificates, registers ``Node`` objects."""

    def __init__(
        self,
        store: CloudStore,
        ca: CertificateAuthority,
        issuer: JoinTokenIssuer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ca = ca
        self.issuer = issuer
        self._clock = clock

    def create_token(self, ttl_s: int = DEFAULT_TOKEN_TTL_S, node: str | None = None) -> str:
        if not 0 < ttl_s <= MAX_TTL_S:
            raise InvalidObject(
                f"ttlSeconds must be between 1 and {MAX_TTL_S} (7 days), got {ttl_s}",
                field="ttlSeconds",
            )
        return self.issuer.create(ttl_s, node)

    async def join(self, request: JoinRequest) -> JoinResult:
        claims = self.issuer.verify(request.token)
        name = request.node
        if not claims.allows(name):
            raise Forbidden(
                f"this join token is for node {claims.node!r}, not {name!r}: "
                f"join as {claims.node!r} or create a token with --node {name}"
            )
        fresh = _node_object(request)  # a bad name or label fails here, before anything else
        existing = await self._existing(name)
        if existing is not None and claims.node != name:
            raise AlreadyExists(
                f"node {name} is already joined; create a token with --node {name} to re-join it"
            )
        certificate = self.ca.sign_csr(request.csr_pem, node_name=name)
        if not await self.store.mark_token_used(claims.jti, claims.exp, int(self._clock())):
            raise Unauthorized("token already used: create a new one with `edgeweave token create`")
        node_object = await self._register(fresh, request, existing)
        return JoinResult(name, certificate, self.ca.cert_pem, node_object)

    async def _existing(self, name: str) -> JSONObject | None:
        try:
            return await self.store.get("Node", "", name)
        except NotFound:
            return None

    async def _register(
        self, fresh: JSONObject, request: JoinRequest, existing: JSONObject | None
    ) -> JSONObject:
        name = request.node
        if existing is None:
            try:
                return await self.store.create(fresh)
            except AlreadyExists as e:  # another join for the same name won the race
                raise AlreadyExists(
                    f"node {name} is already joined; create a token with --node {name} "
                    "to re-join it"
                ) from e
        # a re-joined node may be a new machine or a wiped data dir: its outbox numbering and
        # held objects start over, so the cloud's record of them must too
        await self.store.reset_node_sync(name)
        updated = dict(existing)
        meta = dict(existing["metadata"])
        meta["labels"] = {**(meta.get("labels") or {}), **request.labels}
        meta.pop("resourceVersion", None)  # a re-join wins over concurrent edits
        updated["metadata"] = meta
        status = dict(existing.get("status") or {})
        status["addresses"] = fresh["status"]["addresses"]
        status["joinedAt"] = fresh["status"]["joinedAt"]
        updated["status"] = status
        return await self.store.update(registry.validate(updated))


def _node_object(request: JoinRequest) -> JSONObject:
    addresses = [{"type": a["type"], "address": a["address"]} for a in request.addresses]
    body: JSONObject = {
        "apiVersion": NODE_API_VERSION,
        "kind": "Node",
        "metadata": {"name": request.node, "labels": dict(request.labels)},
        "spec": {},
        # recorded before the certificate is signed: the hub refuses certificates issued
        # before the node's latest registration (an old machine after a re-join)
        "status": {"phase": "Unknown", "addresses": addresses, "joinedAt": now_rfc3339()},
    }
    return registry.validate(body)


def renew_node_certificate(ca: CertificateAuthority, node_name: str, csr_pem: bytes) -> bytes:
    """A fresh certificate (PEM) for the node authenticated as ``node_name``; the CSR's
    subject must be exactly ``CN=node_name`` (:class:`~edgeweave.errors.Forbidden`)."""
    return ca.sign_csr(csr_pem, node_name=node_name)
