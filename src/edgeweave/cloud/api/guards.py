"""ASGI middlewares that run before any handler: authentication and the body-size limit.

Pure ASGI (no per-request task or body buffering) so they cost microseconds. Authentication
decides *who* is calling; what they may do is the handlers' and authorizer's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeweave.cloud.api.status import status_body
from edgeweave.errors import Forbidden, PayloadTooLarge

# paths anyone may read: liveness and the API description (they reveal no state); the CA
# (public by nature) and the join call (its token is the credential, checked by the handler)
PUBLIC_PATHS = frozenset(
    {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/api/v1/ca", "/api/v1/join"}
)
# a GET here carrying a presigned ``sig`` passes without a bearer: the handler verifies it
PRESIGNED_PREFIXES = ("/api/v1/objects/", "/api/v1/pfs/transfer/")
# ... and any method here (a node's deliveries to a Merger, a cloud worker's outputs; the
# handler verifies)
PRESIGNED_WRITE_PREFIXES = ("/api/v1/pfs/merge/", "/api/v1/pfs/output/")


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" (later: "node")
    name: str


TokenCheck = Callable[[str], Principal | None]


async def _reject(send: Send, code: int, reason: str, message: str) -> None:
    body = status_body(code, reason, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if code == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _presigned(scope: Scope) -> bool:
    path = scope["path"]
    readable = scope["method"] in ("GET", "HEAD") and path.startswith(PRESIGNED_PREFIXES)
    if not readable and not path.startswith(PRESIGNED_WRITE_PREFIXES):
        return False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return bool(query.get("sig"))


def require_admin(request: Request) -> None:
    """Forbidden unless the caller authenticated as the admin."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal) or principal.kind != "admin":
        raise Forbidden("this call needs the admin token")


class BearerAuth:
    """401 unless ``Authorization: Bearer <token>`` names a known principal."""

    def __init__(self, app: ASGIApp, check: TokenCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS or _presigned(scope):
            await self.app(scope, receive, send)
            return
        token = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    token = rest.strip()
                break
        if not token:
            await _reject(
                send,
                401,
                "Unauthorized",
                "missing bearer token: send 'Authorization: Bearer <token>' (see DATA/admin.yaml)",
            )
            return
        principal = self.check(token)
        if principal is None:
            await _reject(send, 401, "Unauthorized", "invalid bearer token")
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for bodies over ``max_bytes``, whether announced by Content-Length or streamed.

    ``overrides`` maps a path prefix to its own limit (object uploads are far larger than
    JSON bodies); the longest matching prefix wins."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    await _reject(send, 400, "BadRequest", "Content-Length is not a number")
                    return
                if announced > max_bytes:
                    await _reject(
                        send,
                        413,
                        "RequestEntityTooLarge",
                        f"request body of {announced} bytes is over the limit of {max_bytes}",
                    )
                    return
                break
        seen = 0
        limit = max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)
