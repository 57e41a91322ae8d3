"""Balancers: spread, health, retry order, consistent-hash remapping, session affinity."""

from __future__ import annotations

import random
from collections import Counter

from edgeweave.aio.clock import ManualClock
from edgeweave.mesh.balancer import (
    ConsistentHash,
    HashRing,
    RandomChoice,
    Request,
    RoundRobin,
    SessionAffinity,
    balancer_for,
)
from edgeweave.mesh.catalog import Endpoint, Policy
from edgeweave.mesh.httphead import header_value


def endpoints(n: int) -> list[Endpoint]:
    return [Endpoint(f"node-{i}", f"10.0.0.{i}", 8080) for i in range(n)]


def sick(endpoint: Endpoint) -> Endpoint:
    return Endpoint(endpoint.node, endpoint.address, endpoint.port, healthy=False)


CLIENT = Request("192.0.2.7")


def test_round_robin_takes_turns_and_skips_unhealthy() -> None:
    eps = endpoints(3)
    rr = RoundRobin()
    assert [rr.choose(eps, CLIENT) for _ in range(6)] == eps + eps
    eps[1] = sick(eps[1])
    picks = {rr.choose(eps, CLIENT) for _ in range(10)}
    assert picks == {eps[0], eps[2]}


def test_round_robin_retry_gives_the_next_endpoint() -> None:
    eps = endpoints(3)
    rr = RoundRobin()
    first = rr.choose(eps, CLIENT)
    assert first is not None
    second = rr.choose(eps, CLIENT, exclude={first.key})
    third = rr.choose(eps, CLIENT, exclude={first.key, second.key})  # type: ignore[union-attr]
    assert {first, second, third} == set(eps)
    assert rr.choose(eps, CLIENT, exclude={e.key for e in eps}) is None


def test_no_healthy_endpoint_gives_none_for_every_policy() -> None:
    eps = [sick(e) for e in endpoints(2)]
    for balancer in (RoundRobin(), RandomChoice(random.Random(1)), ConsistentHash()):
        assert balancer.choose(eps, CLIENT) is None
        assert balancer.choose([], CLIENT) is None


def test_random_uses_the_injected_rng_and_honours_exclude() -> None:
    eps = endpoints(4)
    one, two = RandomChoice(random.Random(7)), RandomChoice(random.Random(7))
    assert [one.choose(eps, CLIENT) for _ in range(20)] == [
        two.choose(eps, CLIENT) for _ in range(20)
    ]
    rnd = RandomChoice(random.Random(3))
    counts = Counter(rnd.choose(eps, CLIENT, exclude={eps[0].key}) for _ in range(400))
    assert eps[0] not in counts
    assert set(counts) == set(eps[1:])


def test_consistent_hash_is_stable_per_source_and_spreads_keys() -> None:
    eps = endpoints(4)
    ch = ConsistentHash()
    assert ch.choose(eps, CLIENT) == ch.choose(list(reversed(eps)), CLIENT)
    counts = Counter(ch.choose(eps, Request(f"10.1.{i // 256}.{i % 256}")) for i in range(4000))
    assert set(counts) == set(eps)
    assert min(counts.values()) > 4000 / 4 * 0.6


def test_consistent_hash_remaps_only_the_keys_of_a_removed_endpoint() -> None:
    eps = endpoints(5)
    ch = ConsistentHash()
    keys = [Request(f"client-{i}") for i in range(5000)]
    before = {r: ch.choose(eps, r) for r in keys}
    gone = eps[2]
    after = {r: ch.choose([e for e in eps if e != gone], r) for r in keys}
    moved = {r for r in keys if before[r] != after[r]}
    assert moved == {r for r in keys if before[r] == gone}
    assert len(moved) < len(keys) * 0.35  # about 1/5 of the keys, never a reshuffle


def test_consistent_hash_steps_over_unhealthy_and_returns_when_healed() -> None:
    eps = endpoints(3)
    ch = ConsistentHash()
    owner = ch.choose(eps, CLIENT)
    assert owner is not None
    flapped = [sick(e) if e == owner else e for e in eps]
    fallback = ch.choose(flapped, CLIENT)
    assert fallback is not None and fallback != owner
    assert ch.choose(flapped, CLIENT, exclude={fallback.key}) not in (None, owner, fallback)
    assert ch.choose(eps, CLIENT) == owner


def test_consistent_hash_on_header_falls_back_to_source_without_it() -> None:
    eps = endpoints(8)
    ch = ConsistentHash(use_header=True)
    users = {ch.choose(eps, Request("192.0.2.1", header_value=f"user-{i}")) for i in range(50)}
    assert len(users) > 1  # same client address, different headers, spread out
    same = {ch.choose(eps, Request(f"192.0.2.{i}", header_value="alice")) for i in range(50)}
    assert len(same) == 1
    assert ch.choose(eps, Request("192.0.2.1")) == ConsistentHash().choose(
        eps, Request("192.0.2.1")
    )


def test_hash_ring_walk_visits_every_member_once() -> None:
    ring = HashRing(["a", "b", "c"], vnodes=10)
    walk = ring.walk("key")
    assert sorted(walk) == ["a", "b", "c"]
    assert walk[0] == ring.owner("key")
    assert HashRing([]).walk("key") == [] and HashRing([]).owner("key") is None


def test_session_affinity_sticks_until_the_ttl_passes() -> None:
    eps = endpoints(3)
    clock = ManualClock()
    sticky = SessionAffinity(RoundRobin(), clock=clock, ttl_s=60)
    first = sticky.choose(eps, CLIENT)
    assert all(sticky.choose(eps, CLIENT) == first for _ in range(5))
    assert sticky.choose(eps, Request("192.0.2.8")) != first  # other clients still rotate
    clock.advance(59)
    assert sticky.choose(eps, CLIENT) == first  # use refreshes the deadline
    clock.advance(61)
    assert sticky.choose(eps, CLIENT) != first


def test_session_affinity_moves_when_its_endpoint_fails() -> None:
    eps = endpoints(2)
    sticky = SessionAffinity(RoundRobin(), clock=ManualClock(), ttl_s=60)
    first = sticky.choose(eps, CLIENT)
    assert first is not None
    moved = sticky.choose(eps, CLIENT, exclude={first.key})
    assert moved not in (None, first)
    assert sticky.choose(eps, CLIENT) == moved  # the new binding sticks
    only_sick = [sick(e) for e in eps]
    assert sticky.choose(only_sick, CLIENT) is None
    assert len(sticky) == 0  # with nowhere to go, the binding is forgotten


def test_session_affinity_table_is_bounded() -> None:
    clock = ManualClock()
    sticky = SessionAffinity(RoundRobin(), clock=clock, ttl_s=60, max_clients=10)
    for i in range(100):
        sticky.choose(endpoints(2), Request(f"10.0.0.{i}"))
    assert len(sticky) == 10
    clock.advance(61)
    sticky.choose(endpoints(2), Request("10.9.9.9"))
    assert len(sticky) == 1  # expired entries are swept as new ones arrive


def test_balancer_for_follows_the_policy() -> None:
    assert isinstance(balancer_for(Policy("RoundRobin")), RoundRobin)
    assert isinstance(balancer_for(Policy("Random"), rng=random.Random(0)), RandomChoice)
    assert isinstance(balancer_for(Policy("ConsistentHash")), ConsistentHash)
    sticky = balancer_for(Policy("Random", session_affinity=True), clock=ManualClock())
    assert isinstance(sticky, SessionAffinity)


def test_header_value_reads_only_complete_header_lines() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-User:  alice \r\n\r\nbody"
    assert header_value(head, "x-user") == "alice"
    assert header_value(head, "missing") is None
    assert header_value(b"GET / HTTP/1.1\r\nX-User: ali", "X-User") is None  # cut short
    assert header_value(b"GET / HTTP/1.1\r\nX-User: al\r\nHost", "X-User") == "al"
    assert header_value(b"\x00\x01 not http\r\nX-User: a\r\n\r\n", "X-User") is None
    assert header_value(b"", "X-User") is None


def test_round_robin_retries_do_not_take_a_turn() -> None:
    dead, live = endpoints(2)
    rr = RoundRobin()
    first_dials = []
    for _ in range(4):
        first = rr.choose([dead, live], CLIENT)
        assert first is not None
        first_dials.append(first)
        if first == dead:
            assert rr.choose([dead, live], CLIENT, exclude={dead.key}) == live
    assert first_dials.count(dead) == 2  # its share, not every connection
