"""A session's outgoing side: a bounded queue of control frames plus a set of dirty refs.

Control frames (``welcome``, ``upstream_ack``, ``artifact_url``, ``logs_request`` ...) are
already encoded and go out in order, before any desired-state frame. Desired state is *level
triggered*: the dispatcher only marks refs dirty, and the writer asks the session for the frame
of each ref at send time (the current desired version, or a delete). A burst of changes to one
object therefore costs one frame, ordering between the initial difference and live changes
cannot go wrong, and the dirty set is bounded by the number of objects a node may hold.

The control queue is bounded; :meth:`SendQueue.put_nowait` raises :class:`TooManyRequests` when
full, and the session then closes the link (the node reconnects and the difference is
recomputed from its acks). The writer yields to the loop every few frames so one node's large
sync cannot hold the event loop.

This module must not decode frames, look at the store, or know message types.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from edgeweave.errors import TooManyRequests
from edgeweave.protocol.refs import ResourceRef

YIELD_EVERY_FRAMES = 32


class SendQueue:
    def __init__(
        self,
        *,
        max_control: int,
        send: Callable[[str], Awaitable[None]],
        frame_for_ref: Callable[[ResourceRef], str | None],
        on_drained: Callable[[], None],
    ) -> None:
        self._max_control = max_control
        self._send = send
        self._frame_for_ref = frame_for_ref
        self._on_drained = on_drained
        self._control: deque[str] = deque()
        self._dirty: dict[ResourceRef, None] = {}
        self._wake = asyncio.Event()
        self._refs_enabled = False
        self._notify_drained = False
        self.frames_sent = 0

    def put_nowait(self, frame: str) -> None:
        """Queue an encoded control frame; :class:`TooManyRequests` when the queue is full."""
        if len(self._control) >= self._max_control:
            raise TooManyRequests(f"send queue full ({self._max_control} frames)")
        self._control.append(frame)
        self._wake.set()

    def mark(self, refs: Iterable[ResourceRef]) -> None:
        """These refs may have changed for this node; the writer re-checks each."""
        dirty = self._dirty
        for ref in refs:
            dirty[ref] = None
        if self._refs_enabled:
            self._wake.set()

    def start_refs(self, refs: Iterable[ResourceRef]) -> None:
        """Begin sending desired state, starting with ``refs``; ``on_drained`` is called the
        first time nothing is left to send."""
        self.mark(refs)
        self._refs_enabled = True
        self._notify_drained = True
        self._wake.set()

    def statistics(self) -> dict[str, int]:
        return {
            "control_queued": len(self._control),
            "control_max": self._max_control,
            "dirty_refs": len(self._dirty),
            "frames_sent": self.frames_sent,
        }

    async def run(self) -> None:
        """The writer: sends until cancelled (or until ``send`` raises)."""
        since_yield = 0
        while True:
            frame: str | None
            if self._control:
                frame = self._control.popleft()
            elif self._refs_enabled and self._dirty:
                ref = next(iter(self._dirty))
                del self._dirty[ref]
                frame = self._frame_for_ref(ref)
                if frame is None:
                    continue
            elif self._notify_drained:
                self._notify_drained = False
                self._on_drained()
                continue
            else:
                self._wake.clear()
                await self._wake.wait()
                since_yield = 0
                continue
            await self._send(frame)
            self.frames_sent += 1
            since_yield += 1
            if since_yield >= YIELD_EVERY_FRAMES:
                since_yield = 0
                await asyncio.sleep(0)
