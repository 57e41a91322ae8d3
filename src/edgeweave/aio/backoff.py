"""Capped exponential backoff with full jitter (the AWS "full jitter" scheme).

Delay ``n`` (0-based) is uniform in ``[0, min(cap_s, base_s * factor**n)]``. Full jitter keeps a
fleet of nodes that lost the cloud at the same moment from reconnecting in lockstep.

Pure arithmetic: this module must not sleep or read a clock; callers sleep on their ``Clock``.
"""

from __future__ import annotations

import random


class Backoff:
    """Successive retry delays; ``reset()`` after a success."""

    def __init__(
        self,
        base_s: float = 0.5,
        cap_s: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
        *,
        jitter: bool = True,
    ) -> None:
        if base_s <= 0:
            raise ValueError(f"base_s must be > 0, not {base_s}")
        if cap_s < base_s:
            raise ValueError(f"cap_s ({cap_s}) must be >= base_s ({base_s})")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, not {factor}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.factor = factor
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._attempt = 0
        self._capped = False
        self.jitter = jitter  # False: exactly base * factor**n (one process restarting)

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling_s(self) -> float:
        """The upper bound of the next delay."""
        if self._capped:
            return self.cap_s
        ceiling = self.base_s * self.factor**self._attempt
        if ceiling >= self.cap_s:
            # stop exponentiating: factor**attempt would overflow a float after ~1000 attempts
            self._capped = True
            return self.cap_s
        return ceiling

    def next_delay(self) -> float:
        """The next delay in seconds, and count one attempt."""
        ceiling = self.ceiling_s()
        delay = self._rng.uniform(0.0, ceiling) if self.jitter else ceiling
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0
        self._capped = False
