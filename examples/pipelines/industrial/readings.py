"""Synthetic sensor readings for the industrial example: the same every run.

Usage: python3 readings.py OUT_DIR MACHINE [MACHINE ...]

Writes OUT_DIR/MACHINE.csv: one reading a minute from 08:00 for an hour, with the columns
time, temperature_c, vibration_mm_s, current_a. A healthy machine's readings scatter around
its normal values; at the minutes FAULTS names, a machine overheats (hot, drawing more
current) or its bearing wears (shaking, a little warmer). Drawn with numpy from a seed made
of the machine's name, so every run writes the same numbers.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np

MINUTES = 60
NORMAL = {"temperature_c": (62.0, 1.5), "vibration_mm_s": (2.0, 0.3), "current_a": (11.5, 0.5)}
# machine -> {minute after 08:00: fault}
FAULTS: dict[str, dict[int, str]] = {
    "press-1": {17: "overheat", 41: "bearing"},
    "press-2": {},
    "pump-1": {8: "bearing"},
    "pump-2": {29: "overheat", 30: "overheat", 52: "bearing"},
    "fan-1": {44: "overheat"},
}


def readings(machine: str) -> list[tuple[str, float, float, float]]:
    rng = np.random.default_rng(zlib.crc32(machine.encode()))
    rows = []
    for minute in range(MINUTES):
        temp, vib, amps = (rng.normal(mean, sd) for mean, sd in NORMAL.values())
        fault = FAULTS.get(machine, {}).get(minute)
        if fault == "overheat":
            temp, amps = temp + 16.0, amps + 3.0
        elif fault == "bearing":
            temp, vib = temp + 4.0, vib * 4.0
        rows.append((f"{8 + minute // 60:02d}:{minute % 60:02d}", temp, vib, amps))
    return rows


def main(out: Path, machines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for machine in machines:
        lines = ["time," + ",".join(NORMAL)]
        lines += [f"{t},{a:.2f},{b:.2f},{c:.2f}" for t, a, b, c in readings(machine)]
        (out / f"{machine}.csv").write_text("\n".join(lines) + "\n")
        print(f"{machine}: {MINUTES} readings, {len(FAULTS.get(machine, {}))} faulty")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2])
    main(Path(sys.argv[1]), sys.argv[2:])
