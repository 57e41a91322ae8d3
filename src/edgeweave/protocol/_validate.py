"""Strict checks that turn parsed JSON into message objects: the codec's validator.

A *check* is a function ``(value) -> value`` that returns the (possibly converted) value or
raises :class:`Invalid` with a message and the location of the bad part (``["entries", 1,
"seq"]``); containers prepend their own key or index on the way out, so the fast path builds no
path strings at all. Checks are strict: ``"1"`` is not an int, ``1`` is not a bool, ``True`` is
not a number, a float field refuses non-finite values. Record checks ignore unknown keys (an
older peer reads a newer peer's messages) and fill absent optional fields with their defaults.

A dataclass field declares its check in its metadata (``field(metadata=check_of(...))``); a
field without one holds plain JSON and is taken as it is.

Pure functions; no I/O. The rest of the code uses :mod:`edgeweave.protocol.codec`, not this.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], Any]
CHECK_KEY = "check"


class Invalid(Exception):
    """A value failed its check; ``loc`` is the path to it, outermost first."""

    def __init__(self, msg: str, *loc: int | str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.loc: list[int | str] = list(loc)


def check_of(check: Check) -> Mapping[str, Any]:
    """Field metadata declaring ``check`` (``field(metadata=check_of(integer(0)))``)."""
    return {CHECK_KEY: check}


def any_json(value: Any) -> Any:
    return value


def text(max_chars: int) -> Check:
    too_long = f"String should have at most {max_chars} characters"

    def check(value: Any) -> str:
        if type(value) is not str:
            raise Invalid("Input should be a valid string")
        if len(value) > max_chars:
            raise Invalid(too_long)
        return value

    return check


def pattern(regex: str) -> Check:
    compiled = re.compile(regex)
    mismatch = f"String should match pattern '{regex}'"

    def check(value: Any) -> str:
        if type(value) is not str:
            raise Invalid("Input should be a valid string")
        if compiled.fullmatch(value) is None:
            raise Invalid(mismatch)
        return value

    return check


def integer(ge: int | None = None, le: int | None = None) -> Check:
    def check(value: Any) -> int:
        if type(value) is not int:
            raise Invalid("Input should be a valid integer")
        if ge is not None and value < ge:
            raise Invalid(f"Input should be greater than or equal to {ge}")
        if le is not None and value > le:
            raise Invalid(f"Input should be less than or equal to {le}")
        return value

    return check


def number(*, gt: float | None = None, ge: float | None = None) -> Check:
    """A finite float; a JSON integer is accepted and becomes a float."""

    def check(raw: Any) -> float:
        kind = type(raw)
        if kind is not float and kind is not int:
            raise Invalid("Input should be a valid number")
        try:
            value = float(raw)
        except OverflowError:  # an integer beyond any float
            raise Invalid("Input should be a finite number") from None
        if not math.isfinite(value):
            raise Invalid("Input should be a finite number")
        if gt is not None and not value > gt:
            raise Invalid(f"Input should be greater than {gt:g}")
        if ge is not None and not value >= ge:
            raise Invalid(f"Input should be greater than or equal to {ge:g}")
        return value

    return check


def boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise Invalid("Input should be a valid boolean")
    return value


def json_object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise Invalid("Input should be an object")
    return value


def optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def tuple_of(item: Check, max_items: int) -> Check:
    """A JSON array of at most ``max_items`` items, each passing ``item``; a tuple."""

    def check(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise Invalid("Input should be a valid array")
        if len(value) > max_items:
            raise Invalid(f"List should have at most {max_items} items, not {len(value)}")
        i = 0
        out: list[Any] = []
        try:
            for i, x in enumerate(value):  # noqa: B007 - i names the failing item
                out.append(item(x))
        except Invalid as e:
            e.loc.insert(0, i)
            raise
        return tuple(out)

    return check


def str_dict(key: Check, value: Check, max_items: int) -> Check:
    """A JSON object of at most ``max_items`` entries; keys and values checked."""

    def check(raw: Any) -> dict[str, Any]:
        if type(raw) is not dict:
            raise Invalid("Input should be an object")
        if len(raw) > max_items:
            raise Invalid(f"Object should have at most {max_items} items, not {len(raw)}")
        out: dict[str, Any] = {}
        for k, v in raw.items():
            try:
                key(k)
            except Invalid as e:
                e.loc[:0] = [k, "[key]"]
                raise
            try:
                out[k] = value(v)
            except Invalid as e:
                e.loc.insert(0, k)
                raise
        return out

    return check


_MISSING: Any = object()
Plan = tuple[tuple[str, Check, bool], ...]


def plan_of(cls: type[Any]) -> Plan:
    """``(name, check, required)`` for each init field of the dataclass ``cls``.

    A field without a declared check named ``type`` is a message's wire tag: it is skipped
    (the class fixes it).
    """
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or (f.name == "type" and CHECK_KEY not in f.metadata):
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, f.metadata.get(CHECK_KEY, any_json), required))
    return tuple(out)


def build(cls: type[Any], plan: Plan, raw: Any) -> Any:
    """An instance of ``cls`` from the JSON object ``raw``, every field checked."""
    if type(raw) is not dict:
        raise Invalid("Input should be an object")
    kwargs: dict[str, Any] = {}
    for name, check, required in plan:
        value = raw.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise Invalid("Field required", name)
            continue
        try:
            kwargs[name] = check(value)
        except Invalid as e:
            e.loc.insert(0, name)
            raise
    return cls(**kwargs)


def record(cls: type[Any]) -> Check:
    """The check of a nested dataclass; its plan is made on first use."""
    plans: list[Plan] = []

    def check(raw: Any) -> Any:
        if not plans:
            plans.append(plan_of(cls))
        return build(cls, plans[0], raw)

    return check
