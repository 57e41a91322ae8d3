"""Resource quantities in Kubernetes notation: memory (``64Mi``), CPU (``500m``), durations.

Pure parsing: each function returns a number or raises ``ValueError`` with a message that
shows the accepted forms. Nothing here knows about kinds or enforces limits.
"""

from __future__ import annotations

import math
import re
from typing import Any

_MEMORY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P)?$")
_MEMORY_UNITS: dict[str, int] = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "P": 1000**5,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
}
_CPU_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS_S: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_memory_bytes(text: str) -> int:
    """``"64Mi"`` → 67108864, ``"1G"`` → 10**9, ``"512"`` → 512."""
    match = _MEMORY_RE.match(text.strip())
    if not match:
        raise ValueError(
            f"memory {text!r} is not a quantity such as 64Mi, 1Gi, 500M or a byte count"
        )
    number, unit = match.groups()
    value = int(float(number) * _MEMORY_UNITS[unit or ""])
    if value <= 0:
        raise ValueError(f"memory {text!r} must be more than 0 bytes")
    return value


def parse_cpu_millis(value: Any) -> int:
    """``"500m"`` → 500, ``"0.5"`` / ``0.5`` → 500, ``2`` → 2000 (thousandths of a CPU)."""
    if isinstance(value, bool):
        raise ValueError(f"cpu {value!r} is not a CPU quantity such as 500m, 0.5 or 2")
    if isinstance(value, int | float):
        millis = float(value) * 1000
    elif isinstance(value, str) and (match := _CPU_RE.match(value.strip())):
        number, milli = match.groups()
        millis = float(number) if milli else float(number) * 1000
    else:
        raise ValueError(f"cpu {value!r} is not a CPU quantity such as 500m, 0.5 or 2")
    if not math.isfinite(millis) or millis < 1:
        raise ValueError(f"cpu {value!r} must be at least 1m (a thousandth of a CPU)")
    return int(millis)


def parse_duration_s(text: str) -> float:
    """Go-style durations as Pachyderm specs use them: ``"30s"``, ``"1m30s"``, ``"2h"``."""
    stripped = text.strip()
    if not stripped or _DURATION_PART_RE.sub("", stripped):
        raise ValueError(f"duration {text!r} is not like 30s, 5m, 1h30m or 250ms")
    return sum(float(n) * _DURATION_UNITS_S[u] for n, u in _DURATION_PART_RE.findall(stripped))
