"""Backoff: capped exponential growth, full jitter, reset."""

from __future__ import annotations

import random

import pytest

from edgeweave.aio.backoff import Backoff


def test_delays_stay_within_the_growing_capped_ceiling() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, factor=2.0, rng=random.Random(1))
    ceilings = [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    for n, ceiling in enumerate(ceilings):
        assert backoff.attempt == n
        assert backoff.ceiling_s() == ceiling
        assert 0.0 <= backoff.next_delay() <= ceiling


def test_delays_are_jittered_across_the_whole_range() -> None:
    backoff = Backoff(base_s=1, cap_s=1, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert min(delays) < 0.1 and max(delays) > 0.9
    assert len(set(delays)) == 200


def test_same_seed_gives_same_delays() -> None:
    a = Backoff(rng=random.Random(3))
    b = Backoff(rng=random.Random(3))
    assert [a.next_delay() for _ in range(10)] == [b.next_delay() for _ in range(10)]


def test_reset_starts_again_from_base() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30, rng=random.Random(0))
    for _ in range(12):
        backoff.next_delay()
    assert backoff.ceiling_s() == 30
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.ceiling_s() == 0.5


def test_many_attempts_do_not_overflow() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30, factor=10, rng=random.Random(0))
    for _ in range(5000):
        assert backoff.next_delay() <= 30


@pytest.mark.parametrize("kwargs", [{"base_s": 0}, {"base_s": 2, "cap_s": 1}, {"factor": 0.5}])
def test_nonsense_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]
