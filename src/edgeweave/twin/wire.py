"""Bytes to checked JSON fields, for :mod:`edgeweave.twin.payloads`.

:func:`load_object` reads a payload under a byte limit and refuses anything that is not a
JSON object (bad UTF-8, ``NaN``, nesting deep enough to exhaust the parser). :class:`Fields`
reads an object's fields **case-insensitively** — KubeEdge mappers have sent ``"State"`` and
``"Event_ID"`` — and checks each field's JSON type. Every failure is a 400
:class:`~edgeweave.twin.errors.TwinError` saying which field; nothing else escapes.

Must not know message shapes (that is ``payloads``) or twin rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from edgeweave.twin.errors import bad_request

MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_EVENT_ID_CHARS: Final = 256
MAX_TIMESTAMP_MS: Final = 2**63 - 1


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def load_object(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Fields:
    """The payload's top-level JSON object, read case-insensitively."""
    if len(payload) > max_bytes:
        raise bad_request(f"payload is {len(payload)} bytes; the limit is {max_bytes}")
    try:
        data = json.loads(payload, parse_constant=_no_constants)
    except RecursionError as e:
        raise bad_request("payload is nested too deeply") from e
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_request(f"payload is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise bad_request(f"payload must be a JSON object, got {_json_type(data)}")
    return Fields(data, "")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class Fields:
    """The fields of one JSON object, keyed by lower-cased name; ``where`` is its path."""

    __slots__ = ("_by_name", "where")

    def __init__(self, obj: Mapping[str, Any], where: str) -> None:
        self.where = where
        self._by_name: dict[str, Any] = {}
        for key, value in obj.items():
            name = key.lower()
            if name in self._by_name:
                raise bad_request(f"{self._path(name)} appears twice (field names ignore case)")
            self._by_name[name] = value

    def _path(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def _wrong(self, name: str, wanted: str, value: Any) -> NoReturn:
        raise bad_request(f"{self._path(name)} must be {wanted}, got {_json_type(value)}")

    def raw(self, name: str) -> Any:
        """The field's JSON value; ``None`` when absent or ``null``."""
        return self._by_name.get(name)

    def has(self, name: str) -> bool:
        return self._by_name.get(name) is not None

    def text(self, name: str, *, max_chars: int, default: str | None = None) -> str | None:
        value = self._by_name.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            self._wrong(name, "a string", value)
        if len(value) > max_chars:
            raise bad_request(f"{self._path(name)} is longer than {max_chars} characters")
        return value

    def required_text(self, name: str, *, max_chars: int) -> str:
        value = self.text(name, max_chars=max_chars)
        if value is None:
            raise bad_request(f"{self._path(name)} is missing")
        return value

    def integer(self, name: str, *, low: int = 0, high: int = MAX_TIMESTAMP_MS) -> int | None:
        value = self._by_name.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong(name, "an integer", value)
        if not low <= value <= high:
            raise bad_request(f"{self._path(name)} must be between {low} and {high}")
        return value

    def boolean(self, name: str) -> bool | None:
        value = self._by_name.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            self._wrong(name, "true or false", value)
        return value

    def object(self, name: str) -> Fields | None:
        value = self._by_name.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self._wrong(name, "an object", value)
        return Fields(value, self._path(name))

    def mapping(self, name: str) -> dict[str, Any] | None:
        """An object whose keys are data (property names): keys keep their case."""
        value = self._by_name.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self._wrong(name, "an object", value)
        return value

    def array(self, name: str) -> list[Any]:
        value = self._by_name.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self._wrong(name, "an array", value)
        return value

    def event_id(self) -> str:
        text = self.text("event_id", max_chars=MAX_EVENT_ID_CHARS, default="")
        return text or ""

    def timestamp_ms(self) -> int | None:
        return self.integer("timestamp")


def element(value: Any, where: str) -> Fields:
    """An array element or map value that must be an object."""
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object, got {_json_type(value)}")
    return Fields(value, where)


def dump(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes (ASCII-safe, keys in the order given)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
