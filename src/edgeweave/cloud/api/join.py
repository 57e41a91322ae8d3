"""HTTP side of joining: the CA download, join-token creation and the join call itself.

- ``GET /api/v1/ca`` (public): the cluster CA, PEM. A joining node fetches it without
  verifying TLS and checks it against the pin in its token.
- ``POST /api/v1/tokens`` (admin): ``{ttlSeconds?, node?}`` → ``{token, expiresAt}``.
- ``POST /api/v1/join`` (no bearer: the token in the body is the credential):
  ``{token, node, csr, labels?, addresses?}`` → ``{certificate, ca, hubUrl, apiUrl, node}``.

The decisions live in :class:`edgeweave.cloud.join.JoinService`; this module only maps HTTP
to it. It must not log tokens or CSRs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from edgeweave.cloud.api.bodies import json_response, read_json_object
from edgeweave.cloud.api.guards import require_admin
from edgeweave.cloud.join import DEFAULT_TOKEN_TTL_S, JoinRequest, JoinService
from edgeweave.errors import InvalidObject

CA_PATH = "/api/v1/ca"
TOKENS_PATH = "/api/v1/tokens"
JOIN_PATH = "/api/v1/join"


@dataclass
class JoinDeps:
    service: JoinService
    hub_url_provider: Callable[[], str]  # filled in once the hub listens
    api_url: str


def build_join_router(deps: JoinDeps) -> APIRouter:
    r = APIRouter(tags=["join"])
    service = deps.service

    @r.get(CA_PATH, summary="The cluster CA certificate (PEM); no authentication")
    async def get_ca() -> Response:
        return Response(service.ca.cert_pem, media_type="application/x-pem-file")

    @r.post(TOKENS_PATH, summary="Create a join token (admin)", status_code=201)
    async def create_token(request: Request) -> Response:
        require_admin(request)
        raw = await request.body()
        body = await read_json_object(request) if raw.strip() else {}
        ttl = body.get("ttlSeconds", DEFAULT_TOKEN_TTL_S)
        if not isinstance(ttl, int) or isinstance(ttl, bool):
            raise InvalidObject("ttlSeconds must be an integer", field="ttlSeconds")
        node = body.get("node")
        if node is not None and (not isinstance(node, str) or not node):
            raise InvalidObject("node must be a non-empty string", field="node")
        token = service.create_token(ttl, node)
        claims = service.issuer.verify(token)
        expires = datetime.fromtimestamp(claims.exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response({"token": token, "expiresAt": expires}, 201)

    @r.post(JOIN_PATH, summary="Join a node: the token in the body is the credential")
    async def join(request: Request) -> Response:
        result = await service.join(JoinRequest.from_body(await read_json_object(request)))
        return json_response(
            {
                "certificate": result.certificate_pem.decode(),
                "ca": result.ca_pem.decode(),
                "hubUrl": deps.hub_url_provider(),
                "apiUrl": deps.api_url,
                "node": result.node_object,
            }
        )

    return r
