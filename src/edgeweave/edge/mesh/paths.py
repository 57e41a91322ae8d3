"""Which path reaches each endpoint on another node: direct TCP, or the relay through the cloud.

Paths are kept per endpoint (node, address, port), not per node: a node may be reachable while
one of its apps only listens on its own loopback, or sits behind a firewall rule. An endpoint
is ``direct`` once a TCP connect to its advertised address succeeded, and ``relay`` once one
failed — refused, timed out, or the network has no route — since the relay may still reach it
from the inside. Live connections update the table as they go; the host also probes endpoints
nobody connected to yet, and tries relayed ones directly again every ``reprobe_interval_s``, so
a path that heals is used again.

What is reported upstream, and shown by ``edgeweave get endpoints -o wide``, is per peer node:
``direct`` when any of its endpoints is reached directly, else ``relay``.

The table holds at most ``max_endpoints`` entries (the oldest checks go first). This module
opens sockets only in :func:`probe`; the table itself is plain data with an injected clock.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from edgeweave.mesh.catalog import EndpointPath


@dataclass(frozen=True, slots=True)
class PathState:
    node: str
    path: EndpointPath
    checked_at: float


class EndpointPaths:
    def __init__(self, clock: Callable[[], float], *, max_endpoints: int = 100_000) -> None:
        self._clock = clock
        self._max = max_endpoints
        self._states: OrderedDict[str, PathState] = OrderedDict()

    def path_to(self, key: str) -> EndpointPath | None:
        """The path last seen to the endpoint with ``key`` (None: never tried)."""
        state = self._states.get(key)
        return state.path if state is not None else None

    def record(self, key: str, node: str, path: EndpointPath) -> bool:
        """Note what a connect to the endpoint ``key`` on ``node`` showed; True when the
        endpoint's path changed."""
        old = self._states.pop(key, None)
        self._states[key] = PathState(node, path, self._clock())
        while len(self._states) > self._max:
            self._states.popitem(last=False)
        return old is None or old.path != path

    def forget_except(self, keys: Collection[str]) -> bool:
        """Drop endpoints that are gone; True when any went."""
        gone = [k for k in self._states if k not in keys]
        for key in gone:
            del self._states[key]
        return bool(gone)

    def due(self, key: str, reprobe_interval_s: float) -> bool:
        """Should the endpoint be probed now? Never-tried ones at once; relayed ones every
        interval (a direct one proves itself, or not, with every connection)."""
        state = self._states.get(key)
        if state is None:
            return True
        return state.path == "relay" and self._clock() - state.checked_at >= reprobe_interval_s

    def by_node(self) -> dict[str, EndpointPath]:
        """Per peer node: ``direct`` when any of its endpoints is reached directly."""
        out: dict[str, EndpointPath] = {}
        for state in self._states.values():
            if out.get(state.node) != "direct":
                out[state.node] = state.path
        return dict(sorted(out.items()))


async def probe(address: str, port: int, timeout_s: float) -> EndpointPath:
    """Try one TCP connect to ``address:port``: ``direct`` when it succeeds, else ``relay``."""
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(address, port)
    except (OSError, TimeoutError):
        return "relay"
    writer.transport.abort()  # we only wanted to know; the app sees a reset, not a request
    return "direct"
