"""``TwinError``: a twin request that gets an error result instead of a success.

KubeEdge answers a bad twin request with ``{"event_id","timestamp","code","reason"}`` on the
result topic. Every check in this package raises :class:`TwinError` with that ``code``;
:mod:`edgeweave.twin.dispatch` (or the bus) turns it into the result payload. Nothing here
may raise another exception type for bad input: a mapper's malformed message must never
crash the agent.
"""

from __future__ import annotations

from typing import Literal

from edgeweave.errors import EdgeweaveError

TwinErrorCode = Literal[400, 404, 409, 500]

BAD_REQUEST: TwinErrorCode = 400
NOT_FOUND: TwinErrorCode = 404
CONFLICT: TwinErrorCode = 409
INTERNAL: TwinErrorCode = 500


class TwinError(EdgeweaveError):
    """A twin request failed: ``code`` is the KubeEdge result code; ``message`` is the text
    that goes into the result's ``"reason"`` (the class's ``reason`` stays the stable
    ``"TwinError"`` every :class:`EdgeweaveError` has)."""

    reason = "TwinError"

    def __init__(self, code: TwinErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code: TwinErrorCode = code

    def __repr__(self) -> str:
        return f"TwinError({self.code}, {self.message!r})"


def bad_request(reason: str) -> TwinError:
    return TwinError(BAD_REQUEST, reason)


def not_found(reason: str) -> TwinError:
    return TwinError(NOT_FOUND, reason)
