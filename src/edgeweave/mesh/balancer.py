"""Load balancers: which endpoint of a service port takes the next connection.

Every balancer answers ``choose(endpoints, request, exclude=...)`` and returns None when no
healthy endpoint is left. Unhealthy endpoints are always skipped. ``exclude`` holds the keys of
endpoints that already failed to connect for this request, so calling ``choose`` again gives
"the next endpoint" to retry: the following one in round-robin order, another random one, or
the next endpoint clockwise on the hash ring.

- ``RoundRobin`` rotates; ``RandomChoice`` draws from an injected ``random.Random``.
- ``ConsistentHash`` places ``vnodes`` points per endpoint on a 64-bit ring and maps the
  request's key (its header value when the policy hashes a header and the request carries it,
  else the client address) to the first endpoint clockwise. When an endpoint leaves, only the
  keys it owned move; unhealthy endpoints stay on the ring and are stepped over, so a flapping
  endpoint does not reshuffle everyone else.
- ``SessionAffinity`` wraps any balancer: a client address sticks to the endpoint it got for
  ``ttl_s`` seconds after its last connection (time from an injected clock), in a bounded table.

Pure: no sockets, no tasks, no global RNG or clock. This module must not read the catalog
itself; the proxy hands it the endpoints of the moment.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgeweave.aio.clock import Clock, SystemClock
from edgeweave.mesh.catalog import Endpoint, Policy


@dataclass(frozen=True, slots=True)
class Request:
    """What a balancer may key on: the client's address and, for header hashing, the value."""

    client_address: str
    header_value: str | None = None


class Balancer(Protocol):
    def choose(
        self, endpoints: Sequence[Endpoint], request: Request, *, exclude: Collection[str] = ()
    ) -> Endpoint | None: ...


def _candidates(endpoints: Sequence[Endpoint], exclude: Collection[str]) -> list[Endpoint]:
    return [e for e in endpoints if e.healthy and e.key not in exclude]


class RoundRobin:
    def __init__(self) -> None:
        self._turn = 0

    def choose(
        self, endpoints: Sequence[Endpoint], request: Request, *, exclude: Collection[str] = ()
    ) -> Endpoint | None:
        candidates = _candidates(endpoints, exclude)
        if not candidates:
            return None
        chosen = candidates[self._turn % len(candidates)]
        if not exclude:
            # a retry does not take a turn: otherwise a dead endpoint just before a live one
            # would be dialled first by every connection instead of by its share of them
            self._turn = (self._turn + 1) % (1 << 32)
        return chosen


class RandomChoice:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(
        self, endpoints: Sequence[Endpoint], request: Request, *, exclude: Collection[str] = ()
    ) -> Endpoint | None:
        candidates = _candidates(endpoints, exclude)
        return self._rng.choice(candidates) if candidates else None


def hash64(value: str) -> int:
    """A stable 64-bit hash (Python's ``hash`` changes per process; rings must not)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class HashRing:
    """``vnodes`` points per member on a 64-bit ring; ``walk`` yields members clockwise."""

    def __init__(self, members: Collection[str], vnodes: int = 160) -> None:
        points = sorted((hash64(f"{m}#{i}"), m) for m in members for i in range(vnodes))
        self._positions = [p for p, _ in points]
        self._owners = [m for _, m in points]
        self.members = frozenset(members)

    def walk(self, key: str) -> list[str]:
        """Every member once, in ring order starting at the first point at or after ``key``."""
        if not self._positions:
            return []
        start = bisect.bisect_left(self._positions, hash64(key))
        seen: dict[str, None] = {}
        n = len(self._owners)
        for i in range(n):
            seen.setdefault(self._owners[(start + i) % n], None)
            if len(seen) == len(self.members):
                break
        return list(seen)

    def owner(self, key: str) -> str | None:
        if not self._positions:
            return None
        i = bisect.bisect_left(self._positions, hash64(key)) % len(self._positions)
        return self._owners[i]


class ConsistentHash:
    def __init__(self, *, use_header: bool = False, vnodes: int = 160) -> None:
        self._use_header = use_header
        self._vnodes = vnodes
        self._ring = HashRing((), vnodes)

    def key_of(self, request: Request) -> str:
        if self._use_header and request.header_value is not None:
            return request.header_value
        return request.client_address

    def choose(
        self, endpoints: Sequence[Endpoint], request: Request, *, exclude: Collection[str] = ()
    ) -> Endpoint | None:
        by_key = {e.key: e for e in endpoints}
        if self._ring.members != by_key.keys():
            self._ring = HashRing(list(by_key), self._vnodes)
        key = self.key_of(request)
        owner = self._ring.owner(key)
        if owner is None:
            return None
        # the owner is the fast path; walk the ring only when it cannot take the connection
        first = by_key[owner]
        if first.healthy and owner not in exclude:
            return first
        for member in self._ring.walk(key):
            endpoint = by_key[member]
            if endpoint.healthy and member not in exclude:
                return endpoint
        return None


class SessionAffinity:
    """Sticks a client address to its endpoint for ``ttl_s`` after its last connection."""

    def __init__(
        self, inner: Balancer, *, clock: Clock, ttl_s: float = 10_800.0, max_clients: int = 10_000
    ) -> None:
        self._inner = inner
        self._clock = clock
        self.ttl_s = ttl_s
        self.max_clients = max_clients
        self._table: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def choose(
        self, endpoints: Sequence[Endpoint], request: Request, *, exclude: Collection[str] = ()
    ) -> Endpoint | None:
        now = self._clock.monotonic()
        client = request.client_address
        held = self._table.get(client)
        if held is not None and held[1] > now:
            sticky = next((e for e in endpoints if e.key == held[0]), None)
            if sticky is not None and sticky.healthy and sticky.key not in exclude:
                self._remember(client, sticky.key, now)
                return sticky
        chosen = self._inner.choose(endpoints, request, exclude=exclude)
        if chosen is None:
            self._table.pop(client, None)
        else:
            self._remember(client, chosen.key, now)
        return chosen

    def _remember(self, client: str, key: str, now: float) -> None:
        self._table[client] = (key, now + self.ttl_s)
        self._table.move_to_end(client)
        while len(self._table) > self.max_clients:
            self._table.popitem(last=False)
        # the oldest entries sit at the front: drop the expired ones while we are here
        while self._table:
            oldest = next(iter(self._table.values()))
            if oldest[1] > now:
                break
            self._table.popitem(last=False)


def balancer_for(
    policy: Policy, *, rng: random.Random | None = None, clock: Clock | None = None
) -> Balancer:
    """The balancer a service's policy asks for (the proxy's default ``balancer_factory``)."""
    inner: Balancer
    if policy.load_balancing == "Random":
        inner = RandomChoice(rng if rng is not None else random.Random())  # noqa: S311 - spreading load, not secrets
    elif policy.load_balancing == "ConsistentHash":
        inner = ConsistentHash(use_header=policy.hash_key == "header")
    else:
        inner = RoundRobin()
    if policy.session_affinity:
        return SessionAffinity(inner, clock=clock if clock is not None else SystemClock())
    return inner
