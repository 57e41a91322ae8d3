"""Reading a driver's free-form ``configData`` map with errors that name the field.

KubeEdge leaves ``protocol.configData`` and ``visitors.configData`` free, and manifests in the
wild write ``port: 502`` as well as ``port: "502"`` and ``slaveID`` as well as ``slaveId``;
:class:`ConfigFields` accepts both (exact key first, then ignoring case; numbers and booleans
also as strings) and raises a :class:`~edgeweave.errors.ConfigError` such as
``device default/thermostat-1: devices[0].device.spec.properties[1].visitors.configData.offset:
must be an integer from 0 to 65535, got -1``. Pure; drivers call it from their factories.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from edgeweave.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class ConfigFields:
    """The fields of one configData map; ``where`` is its path, ``device`` the device id."""

    def __init__(self, data: Mapping[str, Any], where: str, *, device: str = "") -> None:
        self._data = data
        self._lower = {str(k).lower(): k for k in data}
        self.where = where
        self.device = device

    def error(self, key: str, problem: str) -> ConfigError:
        prefix = f"device {self.device}: " if self.device else ""
        return ConfigError(f"{prefix}{self.where}.{key}: {problem}")

    def has(self, key: str) -> bool:
        return self.raw(key) is not None

    def raw(self, key: str) -> Any:
        if key in self._data:
            return self._data[key]
        actual = self._lower.get(key.lower())
        return self._data[actual] if actual is not None else None

    def text(self, key: str, default: str = _MISSING) -> str:
        value = self.raw(key)
        if value is None:
            return self._default(key, default, "a string")
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, key: str, default: int = _MISSING, *, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            return self._default(key, default, f"an integer from {low} to {high}")
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise self.error(key, f"must be an integer from {low} to {high}, got {value!r}")
        return number

    def number(
        self,
        key: str,
        default: float = _MISSING,
        *,
        low: float = -math.inf,
        high: float = math.inf,
        nonzero: bool = False,
    ) -> float:
        value = self.raw(key)
        if value is None:
            return self._default(key, default, "a number")
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise self.error(key, f"must be a number, got {value!r}")
        if not low <= number <= high:
            raise self.error(key, f"must be between {low:g} and {high:g}, got {value!r}")
        if nonzero and number == 0:
            raise self.error(key, "must not be 0")
        return number

    def boolean(self, key: str, default: bool = _MISSING) -> bool:
        value = self.raw(key)
        if value is None:
            return self._default(key, default, "true or false")
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise self.error(key, f"must be true or false, got {value!r}")

    def choice(self, key: str, options: Sequence[str], default: str = _MISSING) -> str:
        """One of ``options`` (matched ignoring case), returned in its canonical spelling."""
        value = self.raw(key)
        if value is None:
            return self._default(key, default, f"one of {', '.join(options)}")
        if isinstance(value, str):
            for option in options:
                if value.strip().lower() == option.lower():
                    return option
        raise self.error(key, f"{value!r} is not one of {', '.join(options)}")

    def _default(self, key: str, default: T, wanted: str) -> T:
        if default is _MISSING:
            raise self.error(key, f"is missing; set it to {wanted}")
        return default
