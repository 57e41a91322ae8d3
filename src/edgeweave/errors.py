"""The one exception tree of edgeweave.

Every error the platform raises on purpose is an :class:`EdgeweaveError`. Adapters that talk to
a third-party library (sqlite3, psycopg, httpx, ...) translate that library's errors into these
with ``raise ... from e`` so callers never catch a foreign exception type.

Each class carries a stable ``reason`` string: the API puts it in JSON error bodies and the
client maps it back to the same class, so a caller can branch on the type on either side.

    EdgeweaveError
    ├── ConfigError              bad settings, config file or command-line value
    ├── InvalidObject            a manifest or request body failed validation (names the field)
    │   └── UnknownKind          no such kind / plural / short name
    ├── BadRequest               a request that is malformed in another way (selector, patch)
    ├── PayloadTooLarge          a body, frame or payload over its size limit
    ├── TooManyRequests          a bounded resource (watch streams, queue) is full: retry later
    ├── ProtocolError            bytes that do not decode to a message
    ├── LinkError                the cloud-edge link
    │   ├── LinkClosed           closed on purpose
    │   └── LinkBroken           lost (timeout, reset, half-open)
    ├── BusError                 the MQTT event bus (broker unreachable, connection lost)
    ├── StoreError               the state store
    │   ├── NotFound
    │   ├── AlreadyExists
    │   ├── Conflict             compare-and-set lost: stale resourceVersion
    │   ├── Gone                 a watch asked for history that was compacted: relist
    │   └── StoreUnavailable     the database cannot be reached
    ├── AuthError
    │   ├── Unauthorized         no or wrong credentials
    │   └── Forbidden            credentials fine, action not allowed
    ├── APIError                 the server answered with an error the client cannot map
    └── PipelineError            data workflow failures
"""

from __future__ import annotations

from typing import ClassVar


class EdgeweaveError(Exception):
    """Base of every error edgeweave raises on purpose."""

    reason: ClassVar[str] = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(EdgeweaveError):
    reason = "InvalidConfig"


class InvalidObject(EdgeweaveError):
    """Validation failed; ``field`` is the dotted path of the first bad field (may be empty)."""

    reason = "Invalid"

    def __init__(self, message: str, *, field: str = "", errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors if errors is not None else [message]


class UnknownKind(InvalidObject):
    reason = "UnknownKind"


class BadRequest(EdgeweaveError):
    reason = "BadRequest"


class PayloadTooLarge(EdgeweaveError):
    reason = "RequestEntityTooLarge"


class TooManyRequests(EdgeweaveError):
    reason = "TooManyRequests"


class ProtocolError(EdgeweaveError):
    reason = "ProtocolError"


class LinkError(EdgeweaveError):
    """``close_code`` is the WebSocket close code when the peer sent one."""

    reason = "LinkError"

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class LinkClosed(LinkError):
    reason = "LinkClosed"


class LinkBroken(LinkError):
    reason = "LinkBroken"


class BusError(EdgeweaveError):
    """The MQTT event bus: the broker cannot be reached or dropped the connection."""

    reason = "BusUnavailable"


class StoreError(EdgeweaveError):
    reason = "StoreError"


class NotFound(StoreError):
    reason = "NotFound"


class AlreadyExists(StoreError):
    reason = "AlreadyExists"


class Conflict(StoreError):
    reason = "Conflict"


class Gone(StoreError):
    reason = "Gone"


class StoreUnavailable(StoreError):
    reason = "ServiceUnavailable"


class AuthError(EdgeweaveError):
    reason = "Unauthorized"


class Unauthorized(AuthError):
    reason = "Unauthorized"


class Forbidden(AuthError):
    reason = "Forbidden"


class APIError(EdgeweaveError):
    """An error answer from the API that maps to no more specific class."""

    reason = "APIError"

    def __init__(self, message: str, *, status: int = 0, api_reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.api_reason = api_reason


class PipelineError(EdgeweaveError):
    reason = "PipelineError"


def error_for_reason(reason: str) -> type[EdgeweaveError] | None:
    """The class whose ``reason`` is ``reason`` (the client uses this to rebuild API errors)."""
    return _BY_REASON.get(reason)


def _collect(cls: type[EdgeweaveError], into: dict[str, type[EdgeweaveError]]) -> None:
    for sub in cls.__subclasses__():
        # the most specific class wins when two share a reason (AuthError/Unauthorized)
        into[sub.reason] = sub
        _collect(sub, into)


_BY_REASON: dict[str, type[EdgeweaveError]] = {}
_collect(EdgeweaveError, _BY_REASON)
