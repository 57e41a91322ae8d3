"""How KubeEdge property values (strings) read as their DeviceModel type.

Shared by the cloud's manifest checks (:mod:`.device_checks`) and the twin engine on the
agent, which must not load the validation library: this module imports only the stdlib.
"""

from __future__ import annotations

import math
import re

PROPERTY_TYPES = ("INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES", "STREAM")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
# the spellings Go's strconv.ParseBool accepts (KubeEdge mappers parse with it)
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT64 = 2**63


def parse_property_value(prop_type: str, value: str) -> int | float | bool | str:
    """``value`` read as ``prop_type`` (a DeviceModel property type); ``ValueError`` if not."""
    kind = prop_type.upper()
    if kind == "INT":
        if not _INT_RE.match(value) or not -_INT64 <= int(value) < _INT64:
            raise ValueError(f"{value!r} is not an integer (INT)")
        return int(value)
    if kind in ("FLOAT", "DOUBLE"):
        if not _FLOAT_RE.match(value) or not math.isfinite(float(value)):
            raise ValueError(f"{value!r} is not a number ({kind}), e.g. 21.5")
        return float(value)
    if kind == "BOOLEAN":
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean (BOOLEAN): use true or false")
    if kind in ("STRING", "BYTES", "STREAM"):
        return value
    raise ValueError(f"unknown property type {prop_type!r}; one of {', '.join(PROPERTY_TYPES)}")
