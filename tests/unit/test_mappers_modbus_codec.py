"""The Modbus register codec: data types, byte and word swaps, scale, and what is refused."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.mappers.modbus.codec import (
    DataType,
    Layout,
    decode_bit,
    decode_registers,
    default_data_type,
    encode_bit,
    encode_registers,
    raw_to_registers,
    registers_to_raw,
)
from edgeweave.mappers.values import format_float, format_value

INT_TYPES = [t for t in DataType if not t.is_float]
swaps = st.booleans()


def test_a_temperature_times_ten_in_one_register_reads_with_scale() -> None:
    layout = Layout(DataType.INT16, scale=0.1)
    assert decode_registers([215], layout, "FLOAT") == "21.5"
    assert decode_registers([0xFFEC], layout, "FLOAT") == "-2"  # -20 x 0.1
    assert decode_registers([3], layout, "FLOAT") == "0.3"  # not 0.30000000000000004
    assert encode_registers("21.5", layout, "FLOAT") == [215]
    assert encode_registers("-2", layout, "FLOAT") == [0xFFEC]


def test_an_integral_float_reports_without_a_trailing_zero_like_go_mappers() -> None:
    assert decode_registers([210], Layout(DataType.INT16, scale=0.1), "FLOAT") == "21"
    assert format_float(1e20) == "100000000000000000000"
    assert format_float(-0.0) == "0"
    assert format_float(1.5e-7) == "0.00000015"


def test_word_and_byte_order_follow_isregisterswap_and_isswap() -> None:
    value = 0x11223344
    plain = Layout(DataType.UINT32)
    assert raw_to_registers(value, plain) == [0x1122, 0x3344]
    assert raw_to_registers(value, Layout(DataType.UINT32, swap_registers=True)) == [
        0x3344,
        0x1122,
    ]
    assert raw_to_registers(value, Layout(DataType.UINT32, swap_bytes=True)) == [0x2211, 0x4433]
    both = Layout(DataType.UINT32, swap_bytes=True, swap_registers=True)
    assert raw_to_registers(value, both) == [0x4433, 0x2211]
    assert registers_to_raw([0x4433, 0x2211], both) == value


def test_float32_reads_back_as_its_shortest_decimal() -> None:
    words = raw_to_registers(21.1, Layout(DataType.FLOAT32))
    assert decode_registers(words, Layout(DataType.FLOAT32), "FLOAT") == "21.1"


def test_an_int_property_reports_whole_numbers_and_booleans_true_or_false() -> None:
    assert decode_registers([215], Layout(DataType.INT16, scale=0.1), "INT") == "22"
    assert decode_registers([0], Layout(DataType.UINT16), "BOOLEAN") == "false"
    assert decode_registers([7], Layout(DataType.UINT16), "BOOLEAN") == "true"
    assert encode_registers("true", Layout(DataType.UINT16), "BOOLEAN") == [1]


def test_bits_read_and_write_as_booleans_or_numbers() -> None:
    assert decode_bit(True, "BOOLEAN") == "true"
    assert decode_bit(False, "INT") == "0"
    assert encode_bit("true", "BOOLEAN") is True
    assert encode_bit("0", "INT") is False


@pytest.mark.parametrize(
    ("value", "layout", "model_type", "message"),
    [
        ("40000", Layout(DataType.INT16), "INT", "does not fit int16"),
        ("-1", Layout(DataType.UINT16), "INT", "does not fit uint16"),
        ("3500", Layout(DataType.INT16, scale=0.1), "FLOAT", "does not fit int16"),
        ("1e39", Layout(DataType.FLOAT32), "FLOAT", "does not fit float32"),
        ("abc", Layout(DataType.INT16), "INT", "not an integer"),
        ("21.5", Layout(DataType.INT16), "INT", "not an integer"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_the_reason(
    value: str, layout: Layout, model_type: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode_registers(value, layout, model_type)


def test_wrong_register_counts_and_nan_are_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        registers_to_raw([1], Layout(DataType.INT32))
    with pytest.raises(ValueError, match="not 16 bits"):
        registers_to_raw([70000], Layout(DataType.INT16))
    nan_words = raw_to_registers(math.nan, Layout(DataType.FLOAT32))
    with pytest.raises(ValueError, match="not a number"):
        decode_registers(nan_words, Layout(DataType.FLOAT32), "FLOAT")


def test_a_missing_datatype_follows_from_limit_and_the_model_type() -> None:
    assert default_data_type(1, "FLOAT") is DataType.INT16
    assert default_data_type(2, "FLOAT") is DataType.FLOAT32
    assert default_data_type(2, "INT") is DataType.INT32
    assert default_data_type(4, "DOUBLE") is DataType.FLOAT64
    with pytest.raises(ValueError, match="limit 3"):
        default_data_type(3, "INT")


@st.composite
def int_cases(draw: st.DrawFn) -> tuple[int, Layout]:
    data_type = draw(st.sampled_from(INT_TYPES))
    low, high = data_type.bounds()
    layout = Layout(data_type, swap_bytes=draw(swaps), swap_registers=draw(swaps))
    return draw(st.integers(low, high)), layout


@settings(max_examples=300, deadline=None)
@given(int_cases())
def test_integers_round_trip_through_registers_in_every_byte_order(
    case: tuple[int, Layout],
) -> None:
    value, layout = case
    words = raw_to_registers(value, layout)
    assert len(words) == layout.data_type.registers
    assert all(0 <= w <= 0xFFFF for w in words)
    assert registers_to_raw(words, layout) == value


@settings(max_examples=300, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from([DataType.FLOAT32, DataType.FLOAT64]),
    swaps,
    swaps,
)
def test_floats_round_trip_through_registers_and_their_strings(
    value: float, data_type: DataType, swap_bytes: bool, swap_registers: bool
) -> None:
    layout = Layout(data_type, swap_bytes=swap_bytes, swap_registers=swap_registers)
    words = encode_registers(format_float(value), layout, "FLOAT")
    reported = decode_registers(words, layout, "FLOAT")
    if value == 0:
        assert reported == "0"  # -0.0 reports as 0, like Go's FormatFloat
    elif data_type is DataType.FLOAT32:
        assert struct.pack(">f", float(reported)) == struct.pack(">f", value)
    else:
        assert float(reported) == value


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-32768, 32767),
    st.sampled_from([0.1, 0.01, 0.5, 2.0, 10.0, 1.0]),
    swaps,
)
def test_a_reported_value_written_back_gives_the_same_registers(
    raw: int, scale: float, swap_bytes: bool
) -> None:
    layout = Layout(DataType.INT16, scale=scale, swap_bytes=swap_bytes)
    words = raw_to_registers(raw, layout)
    reported = decode_registers(words, layout, "FLOAT")
    assert encode_registers(reported, layout, "FLOAT") == words


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_float_is_plain_and_exact(value: float) -> None:
    text = format_float(value)
    assert "e" not in text and "+" not in text
    assert float(text) == value or (value == 0 and text == "0")
    assert format_value("FLOAT", value) == text
