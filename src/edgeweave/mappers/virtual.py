"""Virtual devices (``protocolName: virtual``): simulated rooms for demos and tests.

A virtual device is a room. ``Device.spec.protocol.configData`` may set the room's people
flow — ``capacity`` (default 10), ``arrivalsPerMinute`` (default 1.0), ``meanStayMinutes``
(default 15) — and ``seed`` (an integer: the same seed and the same read times give the same
values). Each property's ``visitors.configData`` says what it is:

- ``{"kind": "sensor", "initial": 21.0, "drift": 0.05, "noise": 0.1, "min": 15, "max": 30}``
  — a value that wanders around a level (Ornstein-Uhlenbeck: pulled back to the level with
  time constant ``tauSeconds``, default 60, pushed by ``drift`` per √second), read with
  Gaussian ``noise``, always within ``min``..``max`` (default: the model's
  minimum/maximum). The level is ``initial + perOccupant x occupants`` (CO₂ and temperature
  rise with people). ``decimals`` (default 2) rounds FLOAT readings; INT readings are whole.
- ``{"kind": "occupancy"}`` — the number of people in the room (an INT property) or whether
  anyone is there (a BOOLEAN one). People arrive at random (Poisson) and stay an exponential
  time, at most ``capacity`` at once.
- ``{"kind": "actuator", "initial": "false"}`` — a value that a write sets and a read returns
  (lights, blinds); the property should be ``ReadWrite``.

Time comes from the runner's clock; it is sampled exactly between reads, whatever their
interval. Must not do I/O.
"""

from __future__ import annotations

import math
import random

from edgeweave.aio.clock import Clock
from edgeweave.mappers.config import DeviceConfig, PropertyConfig
from edgeweave.mappers.driver import DriverFactory
from edgeweave.mappers.errors import DeviceRefused
from edgeweave.mappers.fields import ConfigFields
from edgeweave.mappers.values import format_float, format_value, parse_value

KINDS = ("sensor", "occupancy", "actuator")


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation; Knuth's loop gets slow
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Room:
    """People coming and going (an M/M/∞ queue with a capacity), advanced exactly."""

    def __init__(self, fields: ConfigFields, rng: random.Random, now: float) -> None:
        self.capacity = fields.integer("capacity", 10, low=0, high=100_000)
        self.arrivals_per_s = fields.number("arrivalsPerMinute", 1.0, low=0) / 60
        self.mean_stay_s = fields.number("meanStayMinutes", 15.0, low=0.001) * 60
        self.occupants = 0
        self._rng = rng
        self._at = now

    def advance(self, now: float) -> int:
        dt = now - self._at
        if dt > 0:
            self._at = now
            stay = math.exp(-dt / self.mean_stay_s)  # chance one person is still here
            staying = sum(1 for _ in range(self.occupants) if self._rng.random() < stay)
            # arrivals during dt that have not left yet: Poisson, exactly
            arrived = _poisson(self._rng, self.arrivals_per_s * self.mean_stay_s * (1 - stay))
            self.occupants = min(self.capacity, staying + arrived)
        return self.occupants


class Sensor:
    def __init__(
        self, fields: ConfigFields, prop: PropertyConfig, rng: random.Random, now: float
    ) -> None:
        if prop.model_type not in ("INT", "FLOAT", "DOUBLE"):
            raise fields.error(
                "kind", f"a sensor needs an INT or FLOAT property, not {prop.model_type}"
            )
        self.initial = fields.number("initial")
        self.drift = fields.number("drift", 0.0, low=0)
        self.noise = fields.number("noise", 0.0, low=0)
        self.tau_s = fields.number("tauSeconds", 60.0, low=0.001)
        self.per_occupant = fields.number("perOccupant", 0.0)
        self.low = fields.number("min", prop.minimum if prop.minimum is not None else -math.inf)
        self.high = fields.number("max", prop.maximum if prop.maximum is not None else math.inf)
        self.decimals = fields.integer("decimals", 2, low=0, high=9)
        if self.low > self.high:
            raise fields.error("min", f"{self.low:g} is above max {self.high:g}")
        self.value = self._clamp(self.initial)
        self._rng = rng
        self._at = now

    def _clamp(self, value: float) -> float:
        return min(self.high, max(self.low, value))

    def read(self, now: float, occupants: int) -> float:
        dt = now - self._at
        level = self.initial + self.per_occupant * occupants
        if dt > 0:
            self._at = now
            decay = math.exp(-dt / self.tau_s)
            spread = self.drift * math.sqrt(self.tau_s / 2 * (1 - decay * decay))
            moved = level + (self.value - level) * decay + self._rng.gauss(0.0, spread)
            self.value = self._clamp(moved)
        return self._clamp(self.value + self._rng.gauss(0.0, self.noise))


class VirtualDriver:
    """One simulated room; every property is a sensor, an occupancy reading or an actuator."""

    def __init__(self, device: DeviceConfig, clock: Clock, rng: random.Random) -> None:
        self.device = device
        self._clock = clock
        now = clock.monotonic()
        room_fields = ConfigFields(
            device.config_data, f"{device.where}.spec.protocol.configData", device=device.id
        )
        self.room = Room(room_fields, rng, now)
        self._kinds: dict[str, str] = {}
        self._sensors: dict[str, Sensor] = {}
        self._values: dict[str, str] = {}  # actuators
        for prop in device.properties:
            fields = ConfigFields(prop.visitor, prop.where, device=device.id)
            kind = fields.choice("kind", KINDS)
            self._kinds[prop.name] = kind
            if kind == "sensor":
                self._sensors[prop.name] = Sensor(fields, prop, rng, now)
            elif kind == "occupancy" and prop.model_type not in ("INT", "BOOLEAN"):
                raise fields.error("kind", "occupancy needs an INT (count) or BOOLEAN property")
            elif kind == "actuator":
                initial = fields.raw("initial")
                text = _default_text(prop) if initial is None else _text_of(initial)
                try:
                    parse_value(prop.model_type, text)
                except ValueError as e:
                    raise fields.error("initial", str(e)) from e
                self._values[prop.name] = text

    async def open(self) -> None:
        return None

    async def read(self, prop: PropertyConfig) -> str:
        kind = self._kinds.get(prop.name)
        now = self._clock.monotonic()
        occupants = self.room.advance(now)
        if kind == "sensor":
            value = self._sensors[prop.name].read(now, occupants)
            if prop.model_type == "INT":
                return format_value("INT", value)
            return format_value(prop.model_type, round(value, self._sensors[prop.name].decimals))
        if kind == "occupancy":
            return format_value(prop.model_type, occupants)
        if kind == "actuator":
            return self._values[prop.name]
        raise DeviceRefused(f"{prop.name} is not a property of device {self.device.id}")

    async def write(self, prop: PropertyConfig, value: str) -> None:
        if self._kinds.get(prop.name) != "actuator":
            raise DeviceRefused(f"{prop.name} is not an actuator; only actuators can be set")
        try:
            parsed = parse_value(prop.model_type, value)
        except ValueError as e:
            raise DeviceRefused(f"{prop.name}: {e}") from e
        self._values[prop.name] = _normalised(prop.model_type, parsed, value)

    async def aclose(self) -> None:
        return None


def _default_text(prop: PropertyConfig) -> str:
    return {"BOOLEAN": "false", "INT": "0", "FLOAT": "0", "DOUBLE": "0"}.get(prop.model_type, "")


def _text_of(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    return str(value)


def _normalised(model_type: str, parsed: object, text: str) -> str:
    """Read back as the platform would report it: ``True`` → ``true``, ``21.50`` → ``21.5``."""
    if isinstance(parsed, bool | int | float):
        return format_value(model_type, parsed)
    return text


def virtual_driver_factory(clock: Clock, *, seed: int | None = None) -> DriverFactory:
    """The factory of the ``virtual`` protocol. A device's ``configData.seed`` wins; else
    ``seed`` (with the device id, so devices differ); else the values are not repeatable."""

    def factory(device: DeviceConfig) -> VirtualDriver:
        fields = ConfigFields(
            device.config_data, f"{device.where}.spec.protocol.configData", device=device.id
        )
        rng = _rng(fields, device.id, seed)
        return VirtualDriver(device, clock, rng)

    return factory


def _rng(fields: ConfigFields, device_id: str, seed: int | None) -> random.Random:
    if fields.has("seed"):
        own = fields.integer("seed", low=-(2**63), high=2**63 - 1)
        return random.Random(f"{own}")  # noqa: S311 - simulation, not security
    if seed is not None:
        return random.Random(f"{seed}:{device_id}")  # noqa: S311 - simulation
    return random.Random()  # noqa: S311 - simulation
