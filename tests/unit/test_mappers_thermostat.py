"""The simulated thermostat's physics: first-order drift to the setpoint, heating, limits."""

from __future__ import annotations

import math
import random

import pytest

from edgeweave.mappers.modbus.thermostat import Thermostat, ThermostatSettings

QUIET = ThermostatSettings(noise_c=0.0)


def test_the_room_closes_the_gap_to_the_setpoint_exponentially() -> None:
    t = Thermostat(now=0.0, rng=random.Random(1), temperature_c=18.0, setpoint_c=21.0,
                   settings=QUIET)  # fmt: skip
    assert t.heating
    t.advance(300.0)  # one time constant
    assert t.temperature_c == pytest.approx(21.0 - 3.0 / math.e)
    t.advance(3000.0)
    assert t.temperature_c == pytest.approx(21.0, abs=1e-3)
    assert not t.heating


def test_speed_compresses_time_and_a_lower_setpoint_cools_the_room() -> None:
    t = Thermostat(now=0.0, rng=random.Random(1), speed=60.0, settings=QUIET)
    t.set_setpoint(25.0, now=0.0)
    t.advance(5.0)  # 5 s at speed 60 = one 300 s time constant
    assert t.temperature_c == pytest.approx(25.0 - 7.0 / math.e)
    t.set_setpoint(19.0, now=5.0)
    assert not t.heating
    assert t.measure(now=60.0) == pytest.approx(19.0, abs=0.1)


def test_readings_are_noisy_to_one_decimal_and_setpoints_are_bounded() -> None:
    t = Thermostat(now=0.0, rng=random.Random(2), temperature_c=21.0)
    readings = {t.measure(now=float(i)) for i in range(50)}
    assert len(readings) > 1
    assert all(round(r, 1) == r and abs(r - 21.0) < 0.5 for r in readings)
    with pytest.raises(ValueError, match=r"outside 5\.\.35"):
        t.set_setpoint(40.0, now=60.0)
    assert t.setpoint_c == 21.0
