"""The link seam: a bidirectional, ordered, framed text channel between an agent and the hub.

A link moves frames; it does not know what is inside them (that is `protocol.codec`'s job).
Implementations: :mod:`.ws` (WebSocket over TLS, the real one) and :mod:`.memory` (an
in-process pair for unit tests). Failures surface as :class:`~edgeweave.errors.LinkClosed`
(closed on purpose, by either side) or :class:`~edgeweave.errors.LinkBroken` (lost).
"""

from __future__ import annotations

from typing import Protocol


class Link(Protocol):
    @property
    def closed(self) -> bool: ...

    async def send(self, frame: str) -> None:
        """Send one frame; raises LinkClosed/LinkBroken when the link is gone."""
        ...

    async def recv(self) -> str:
        """The next frame; raises LinkClosed/LinkBroken when the link is gone."""
        ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None: ...
