"""Property values as they travel: strings, typed by the DeviceModel property type.

Drivers read numbers and booleans from devices and report strings; desired values arrive as
strings and are written as numbers. These helpers do both conversions the same way for every
driver:

- :func:`format_value` renders a reading the way KubeEdge's Go mappers do
  (``strconv.FormatFloat(v, 'f', -1, 64)``): the shortest decimal that reads back as the same
  float, never an exponent, no trailing ``.0`` — so a desired ``"21.5"`` or ``"21"`` written
  and read back is reported as exactly ``"21.5"`` or ``"21"`` and the agent sees no delta;
- :func:`parse_value` reads a desired value with the rules the API validated it with
  (:func:`edgeweave.models.device_checks.parse_property_value`), as a ``ValueError``.

Pure functions; no I/O, nothing protocol-specific.
"""

from __future__ import annotations

import math
from decimal import Decimal

from edgeweave.models.device_checks import parse_property_value

NUMERIC_TYPES = ("INT", "FLOAT", "DOUBLE")


def format_float(value: float) -> str:
    """``value`` as the shortest plain decimal: ``21.5``, ``21``, ``0.3``, ``1000000``.

    ``ValueError`` for NaN and infinities (a twin value must parse as a number)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    if value == 0:
        return "0"  # also for -0.0
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_value(model_type: str, value: bool | int | float) -> str:
    """A reading as the string reported for a property of ``model_type`` (INT, FLOAT, ...).

    INT rounds to the nearest integer; BOOLEAN is ``true``/``false`` (a number is true when
    non-zero); FLOAT/DOUBLE use :func:`format_float`; STRING-like types get the number's text.
    """
    kind = model_type.upper()
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if isinstance(value, bool):
        value = int(value)
    if kind == "INT":
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{value!r} is not a finite number")
            return str(round(value))
        return str(value)
    if isinstance(value, int):
        return str(value)
    return format_float(value)


def parse_value(model_type: str, text: str) -> bool | int | float | str:
    """A desired value read as ``model_type``; ``ValueError`` saying why it is not one."""
    return parse_property_value(model_type, text)


def parse_number(model_type: str, text: str) -> float | int:
    """A desired value as a number (a BOOLEAN is 1 or 0); ``ValueError`` for other types."""
    value = parse_property_value(model_type, text)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    raise ValueError(f"a {model_type} value cannot be written as a number")
