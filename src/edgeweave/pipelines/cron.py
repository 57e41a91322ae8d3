"""Cron schedules: when a ``cron`` input ticks and when a scheduled workflow runs.

The text is what Pachyderm's ``input.cron.spec`` takes:

- five fields, ``minute hour day-of-month month day-of-week``, each ``*``, a number, a range
  ``a-b``, a list ``a,b`` and a step ``*/n`` or ``a-b/n``; months and weekdays also by name
  (``JAN``, ``MON``); day-of-week 0 and 7 are Sunday. When both day fields are restricted a
  day matches either (as in cron);
- ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``),
  ``@hourly``;
- ``@every DURATION`` (``@every 10s``, ``@every 1h30m``), counted from the previous tick.

Times are UTC. :func:`parse_schedule` raises :class:`InvalidObject` naming the field and the
part it could not read. Pure: no clock is read here; callers pass the time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edgeweave.errors import InvalidObject

MAX_TEXT = 256
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
# a search for the next match gives up after this many years (e.g. "0 0 30 2 *" never matches)
_HORIZON_YEARS = 5


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; :meth:`next_after` is the first tick strictly after a time."""

    text: str
    every: timedelta | None = None
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Monday, as datetime.weekday()
    days_any: bool = True
    weekdays_any: bool = True

    def next_after(self, t: datetime) -> datetime:
        """The first tick after ``t`` (an aware datetime; naive ones are taken as UTC)."""
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        t = t.astimezone(UTC)
        if self.every is not None:
            return t + self.every
        n = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = t + timedelta(days=366 * _HORIZON_YEARS)
        while n < end:
            if n.month not in self.months:
                n = (n.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(n):
                n = n.replace(hour=0, minute=0) + timedelta(days=1)
            elif n.hour not in self.hours:
                n = n.replace(minute=0) + timedelta(hours=1)
            elif n.minute not in self.minutes:
                n += timedelta(minutes=1)
            else:
                return n
        raise InvalidObject(f"cron spec {self.text!r} never matches", field="spec")

    def _day_matches(self, n: datetime) -> bool:
        in_days = n.day in self.days
        in_weekdays = n.weekday() in self.weekdays
        if self.days_any or self.weekdays_any:
            return in_days and in_weekdays
        return in_days or in_weekdays


def parse_schedule(text: str, field: str = "spec") -> Schedule:
    """A :class:`Schedule` from cron text; InvalidObject naming ``field`` when malformed."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidObject(f"{field}: a cron spec is required, e.g. '@every 60s'", field=field)
    if len(text) > MAX_TEXT:
        raise InvalidObject(f"{field}: longer than {MAX_TEXT} characters", field=field)
    words = text.split()
    if words[0].lower() == "@every":
        if len(words) != 2:
            raise InvalidObject(
                f"{field}: '@every' takes one duration, e.g. '@every 90s'", field=field
            )
        return Schedule(text=text, every=_duration(words[1], field))
    if words[0].startswith("@"):
        expanded = _DESCRIPTORS.get(words[0].lower())
        if expanded is None or len(words) != 1:
            names = ", ".join(sorted(_DESCRIPTORS))
            raise InvalidObject(
                f"{field}: unknown {words[0]!r}; use @every or {names}", field=field
            )
        words = expanded.split()
    if len(words) != 5:
        raise InvalidObject(
            f"{field}: {text!r} has {len(words)} field(s); cron takes 5 "
            "(minute hour day-of-month month day-of-week) or @every DURATION",
            field=field,
        )
    minute, hour, day, month, weekday = words
    weekdays = _field(weekday, 0, 7, _DAYS, field, "day-of-week")
    return Schedule(
        text=text,
        minutes=_field(minute, 0, 59, None, field, "minute"),
        hours=_field(hour, 0, 23, None, field, "hour"),
        days=_field(day, 1, 31, None, field, "day-of-month"),
        months=_field(month, 1, 12, _MONTHS, field, "month"),
        weekdays=frozenset((d - 1) % 7 for d in weekdays),  # cron 0/7 = Sunday -> 6
        days_any=day.startswith("*"),
        weekdays_any=weekday.startswith("*"),
    )


def _duration(word: str, field: str) -> timedelta:
    m = _DURATION.match(word.lower())
    if m is None or not any(m.groups()):
        raise InvalidObject(f"{field}: bad duration {word!r}; use e.g. 30s, 5m, 1h30m", field=field)
    h, mi, s, ms = (int(g or 0) for g in m.groups())
    delta = timedelta(hours=h, minutes=mi, seconds=s, milliseconds=ms)
    if delta < timedelta(seconds=1):
        raise InvalidObject(f"{field}: '@every' needs at least 1s, got {word!r}", field=field)
    return delta


def _field(
    text: str, low: int, high: int, names: list[str] | None, field: str, what: str
) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidObject(f"{field}: {what} step {step_text!r} must be > 0", field=field)
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = (
                _value(a, low, high, names, field, what),
                _value(b, low, high, names, field, what),
            )
            if first > last:
                raise InvalidObject(f"{field}: {what} range {base!r} runs backwards", field=field)
        else:
            first = _value(base, low, high, names, field, what)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _value(word: str, low: int, high: int, names: list[str] | None, field: str, what: str) -> int:
    if names is not None and word.upper() in names:
        return names.index(word.upper()) + (1 if names is _MONTHS else 0)
    if not word.isdigit() or not low <= int(word) <= high:
        raise InvalidObject(f"{field}: {what} {word!r} is not in {low}..{high}", field=field)
    return int(word)
