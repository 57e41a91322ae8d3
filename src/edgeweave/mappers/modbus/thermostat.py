"""A smart-building thermostat's physics, for the Modbus simulator (and nothing else).

The room follows its setpoint as a first-order system: after ``dt`` seconds the gap to the
setpoint has shrunk by ``exp(-dt x speed / time_constant_s)`` (a radiator-and-room time
constant of 5 minutes by default; ``speed`` compresses time for demos and tests). The unit
calls for heat (the heating coil is on) while the room is more than ``deadband_c`` below the
setpoint; above the setpoint it cools (the HVAC unit does both). The sensor reads the room
temperature plus a little Gaussian noise, to one decimal like a real wall unit.

Setpoints outside ``min_setpoint_c``..``max_setpoint_c`` are refused with ``ValueError`` (the
simulator answers Modbus "illegal data value"). Time comes in as ``now`` (seconds on a
monotonic clock); randomness from the ``random.Random`` given. Pure: no I/O, no pymodbus.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThermostatSettings:
    time_constant_s: float = 300.0
    noise_c: float = 0.05  # standard deviation of a reading
    deadband_c: float = 0.2
    min_setpoint_c: float = 5.0
    max_setpoint_c: float = 35.0


class Thermostat:
    def __init__(
        self,
        *,
        now: float,
        rng: random.Random,
        setpoint_c: float = 21.0,
        temperature_c: float = 18.0,
        speed: float = 1.0,
        settings: ThermostatSettings | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, not {speed}")
        self.settings = settings if settings is not None else ThermostatSettings()
        self.speed = speed
        self._rng = rng
        self._at = now
        self.temperature_c = temperature_c  # the room (true value)
        self.setpoint_c = self._checked(setpoint_c)

    @property
    def heating(self) -> bool:
        return self.temperature_c < self.setpoint_c - self.settings.deadband_c

    def advance(self, now: float) -> None:
        """Let the room evolve up to ``now`` (earlier times are ignored)."""
        dt = now - self._at
        if dt <= 0:
            return
        self._at = now
        decay = math.exp(-dt * self.speed / self.settings.time_constant_s)
        self.temperature_c = self.setpoint_c + (self.temperature_c - self.setpoint_c) * decay

    def set_setpoint(self, setpoint_c: float, now: float) -> None:
        """A new setpoint from ``now`` on; ValueError when out of range."""
        checked = self._checked(setpoint_c)
        self.advance(now)
        self.setpoint_c = checked

    def measure(self, now: float) -> float:
        """What the sensor reads at ``now``: the room plus noise, to 0.1 °C."""
        self.advance(now)
        noisy = self.temperature_c + self._rng.gauss(0.0, self.settings.noise_c)
        return round(noisy, 1)

    def _checked(self, setpoint_c: float) -> float:
        s = self.settings
        if not s.min_setpoint_c <= setpoint_c <= s.max_setpoint_c:
            raise ValueError(
                f"setpoint {setpoint_c:g} °C is outside {s.min_setpoint_c:g}..{s.max_setpoint_c:g}"
            )
        return setpoint_c
