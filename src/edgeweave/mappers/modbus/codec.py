"""Modbus register values: registers ↔ numbers ↔ the strings a twin carries.

A register is 16 bits, sent big-endian. A value wider than one register spans ``limit``
consecutive registers, most significant first, unless the device says otherwise:

- ``isRegisterSwap`` — the registers come least significant first (word swap);
- ``isSwap`` — the two bytes inside each register are swapped (byte swap).

``dataType`` says how the bytes read as a number: ``int16``, ``uint16`` (1 register),
``int32``, ``uint32``, ``float32`` (2), ``int64``, ``uint64``, ``float64`` (4). Then
``reported = raw x scale``, rendered for the model's property type
(:func:`~edgeweave.mappers.values.format_value`); a desired value is divided by ``scale``
and, for an integer ``dataType``, rounded to the nearest integer and range-checked. Coils and
discrete inputs are single bits: ``true``/``false`` (``1``/``0`` for an ``INT`` property).

Pure: no I/O, no pymodbus. Every bad value is a ``ValueError`` saying why.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from edgeweave.mappers.values import format_value, parse_number


class RegisterKind(enum.Enum):
    COIL = "CoilRegister"
    DISCRETE_INPUT = "DiscreteInputRegister"
    HOLDING = "HoldingRegister"
    INPUT = "InputRegister"

    @property
    def is_bit(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.HOLDING)


class DataType(enum.Enum):
    """Register data types: ``(name, struct format, registers)``."""

    INT16 = ("int16", "h", 1)
    UINT16 = ("uint16", "H", 1)
    INT32 = ("int32", "i", 2)
    UINT32 = ("uint32", "I", 2)
    INT64 = ("int64", "q", 4)
    UINT64 = ("uint64", "Q", 4)
    FLOAT32 = ("float32", "f", 2)
    FLOAT64 = ("float64", "d", 4)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def registers(self) -> int:
        return self.value[2]

    @property
    def is_float(self) -> bool:
        return self.value[1] in ("f", "d")

    def bounds(self) -> tuple[int, int]:
        """The range of an integer type."""
        bits = 16 * self.registers
        if self.value[1].isupper():
            return 0, 2**bits - 1
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    @classmethod
    def named(cls, label: str) -> DataType:
        for member in cls:
            if member.label == label.lower():
                return member
        raise ValueError(f"unknown dataType {label!r}; one of {', '.join(DATA_TYPE_NAMES)}")


DATA_TYPE_NAMES = tuple(member.label for member in DataType)


def default_data_type(limit: int, model_type: str) -> DataType:
    """The ``dataType`` to assume when a visitor names none: from ``limit`` and the model."""
    is_float = model_type.upper() in ("FLOAT", "DOUBLE")
    if limit == 1:
        return DataType.INT16
    if limit == 2:
        return DataType.FLOAT32 if is_float else DataType.INT32
    if limit == 4:
        return DataType.FLOAT64 if is_float else DataType.INT64
    raise ValueError(f"limit {limit} fits no number type; name a dataType or use 1, 2 or 4")


@dataclass(frozen=True, slots=True)
class Layout:
    """How one property sits in registers (the parsed visitor, minus the address)."""

    data_type: DataType
    scale: float = 1.0
    swap_bytes: bool = False  # isSwap
    swap_registers: bool = False  # isRegisterSwap


def _to_wire(registers: Sequence[int], layout: Layout) -> list[int]:
    """Device order ↔ big-endian order (the same swaps undo themselves)."""
    words = list(registers)
    if layout.swap_registers:
        words.reverse()
    if layout.swap_bytes:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


def registers_to_raw(registers: Sequence[int], layout: Layout) -> int | float:
    """The number the registers hold (before scaling)."""
    count = layout.data_type.registers
    if len(registers) != count:
        raise ValueError(f"{layout.data_type.label} needs {count} registers, got {len(registers)}")
    for word in registers:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"register value {word} is not 16 bits")
    data = b"".join(w.to_bytes(2, "big") for w in _to_wire(registers, layout))
    value: int | float = struct.unpack(">" + layout.data_type.value[1], data)[0]
    return value


def raw_to_registers(raw: int | float, layout: Layout) -> list[int]:
    """The registers that hold ``raw`` (unscaled); ValueError when it does not fit."""
    fmt = ">" + layout.data_type.value[1]
    if not layout.data_type.is_float:
        low, high = layout.data_type.bounds()
        if isinstance(raw, float) or not low <= raw <= high:
            raise ValueError(f"{raw} does not fit {layout.data_type.label} ({low}..{high})")
    try:
        data = struct.pack(fmt, raw)
    except (struct.error, OverflowError) as e:
        raise ValueError(f"{raw} does not fit {layout.data_type.label}") from e
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return _to_wire(words, layout)


def _shortest_float32(value: float) -> float:
    """A float32 read back as the shortest decimal that is the same float32 (21.1, not
    21.100000381469727)."""
    if not math.isfinite(value):
        return value
    packed = struct.pack(">f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    return value


def _tidy(value: float) -> float:
    """Drop binary noise from scaling (3 x 0.1 = 0.30000000000000004 → 0.3)."""
    return float(f"{value:.15g}")


def decode_registers(registers: Sequence[int], layout: Layout, model_type: str) -> str:
    """The reported string of registers read from the device."""
    raw = registers_to_raw(registers, layout)
    if layout.data_type is DataType.FLOAT32:
        raw = _shortest_float32(float(raw))
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError(f"the registers hold {raw}, not a number")
    if layout.scale == 1:
        return format_value(model_type, raw)
    return format_value(model_type, _tidy(raw * layout.scale))


def encode_registers(value: str, layout: Layout, model_type: str) -> list[int]:
    """The registers to write for a desired value (divided by ``scale``)."""
    number = parse_number(model_type, value)
    raw: float | int = number / layout.scale if layout.scale != 1 else number
    if not layout.data_type.is_float:
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise ValueError(f"{value} / {layout.scale:g} is not a finite number")
            raw = round(_tidy(raw))
        return raw_to_registers(raw, layout)
    return raw_to_registers(float(raw), layout)


def decode_bit(bit: bool, model_type: str) -> str:
    """The reported string of a coil or discrete input."""
    if model_type.upper() == "BOOLEAN":
        return "true" if bit else "false"
    return format_value(model_type, int(bit))


def encode_bit(value: str, model_type: str) -> bool:
    """The coil state for a desired value: a boolean, or a number (non-zero is on)."""
    return parse_number(model_type, value) != 0
