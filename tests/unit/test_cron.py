"""Cron schedules: the texts Pachyderm's cron input takes, and errors naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.pipelines.cron import parse_schedule

T0 = datetime(2026, 11, 26, 11, 24, 30, tzinfo=UTC)  # a Thursday


def ticks(text: str, n: int, start: datetime = T0) -> list[datetime]:
    schedule, out, t = parse_schedule(text), [], start
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t)
    return out


def test_every_counts_from_the_previous_tick() -> None:
    assert ticks("@every 90s", 2) == [T0 + timedelta(seconds=90), T0 + timedelta(seconds=180)]
    assert ticks("@every 1h30m", 1) == [T0 + timedelta(hours=1, minutes=30)]


def test_steps_ranges_and_lists() -> None:
    assert [t.minute for t in ticks("*/15 * * * *", 3)] == [30, 45, 0]
    assert [(t.hour, t.minute) for t in ticks("5,10 9-10 * * *", 3)] == [(9, 5), (9, 10), (10, 5)]
    assert ticks("0 0 1 1 *", 1) == [datetime(2027, 1, 1, tzinfo=UTC)]


def test_names_and_sunday_as_seven() -> None:
    (mon,) = ticks("0 8 * * MON", 1)
    assert (mon.weekday(), mon.day, mon.hour) == (0, 30, 8)
    assert ticks("0 0 * * 7", 1) == ticks("0 0 * * SUN", 1) == ticks("0 0 * * 0", 1)
    assert ticks("0 0 1 feb *", 1) == [datetime(2027, 2, 1, tzinfo=UTC)]


def test_both_day_fields_restricted_match_either() -> None:
    # the 1st of the month or any Friday: Friday 27 November comes first
    assert ticks("0 0 1 * FRI", 2) == [
        datetime(2026, 11, 27, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    ]


def test_descriptors() -> None:
    assert ticks("@hourly", 1) == [datetime(2026, 11, 26, 12, tzinfo=UTC)]
    assert ticks("@daily", 1) == ticks("@midnight", 1) == [datetime(2026, 11, 27, tzinfo=UTC)]
    assert ticks("@weekly", 1) == [datetime(2026, 11, 29, tzinfo=UTC)]


def test_naive_times_are_utc() -> None:
    assert parse_schedule("@hourly").next_after(T0.replace(tzinfo=None)) == ticks("@hourly", 1)[0]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "required"),
        ("* * * *", "has 4 field(s)"),
        ("61 * * * *", "minute '61'"),
        ("* * * 13 *", "month '13'"),
        ("*/0 * * * *", "step"),
        ("5-2 * * * *", "backwards"),
        ("@every", "one duration"),
        ("@every 10", "bad duration"),
        ("@every 500ms", "at least 1s"),
        ("@often", "unknown '@often'"),
        ("x" * 300, "longer than"),
    ],
)
def test_malformed_specs_name_the_field(text: str, says: str) -> None:
    with pytest.raises(InvalidObject) as e:
        parse_schedule(text, field="input.cron.spec")
    assert e.value.field == "input.cron.spec"
    assert says in e.value.message


def test_a_spec_that_never_matches_is_an_error() -> None:
    with pytest.raises(InvalidObject, match="never matches"):
        parse_schedule("0 0 30 2 *").next_after(T0)
