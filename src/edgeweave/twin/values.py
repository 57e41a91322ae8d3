"""Twin property keys, values and value types: the limits of COMPAT.md §2.

- keys match ``^[a-zA-Z0-9-_.,:/@#]{1,128}$``;
- a non-empty value uses the same characters and has at most 512 of them;
- ``metadata.type`` is one of ``string``, ``int``, ``integer``, ``float``, ``boolean`` or
  ``deleted`` (a tombstone), and a value must parse as its type the way KubeEdge's mappers
  parse it (the rules of :func:`edgeweave.models.propvalue.parse_property_value`).

Every failure is a 400 :class:`~edgeweave.twin.errors.TwinError` naming the property. Pure
functions; nothing here knows about topics, JSON or versions.
"""

from __future__ import annotations

import re
from typing import Final

from edgeweave.models.propvalue import parse_property_value
from edgeweave.twin.errors import bad_request

MAX_KEY_CHARS: Final = 128
MAX_VALUE_CHARS: Final = 512
_CHARSET = r"A-Za-z0-9_.,:/@#-"
_KEY_RE = re.compile(rf"[{_CHARSET}]{{1,{MAX_KEY_CHARS}}}")
_VALUE_RE = re.compile(rf"[{_CHARSET}]{{1,{MAX_VALUE_CHARS}}}")

STRING: Final = "string"
INT: Final = "int"
INTEGER: Final = "integer"
FLOAT: Final = "float"
BOOLEAN: Final = "boolean"
DELETED: Final = "deleted"
VALUE_TYPES: Final = (STRING, INT, INTEGER, FLOAT, BOOLEAN, DELETED)

# a twin type read through a DeviceModel property type (models.device_checks)
_MODEL_TYPE_OF: Final = {INT: "INT", INTEGER: "INT", FLOAT: "FLOAT", BOOLEAN: "BOOLEAN"}
# DeviceModel property types (COMPAT.md §1) as twin value types
_TWIN_TYPE_OF_MODEL: Final = {
    "INT": INT,
    "FLOAT": FLOAT,
    "DOUBLE": FLOAT,
    "BOOLEAN": BOOLEAN,
    "STRING": STRING,
    "BYTES": STRING,
    "STREAM": STRING,
}


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def check_key(key: str) -> str:
    """``key`` if it is a valid property name, else a 400 TwinError."""
    if _KEY_RE.fullmatch(key) is None:
        raise bad_request(
            f"property name {_shown(key)} is invalid: use 1 to {MAX_KEY_CHARS} of "
            "a-z A-Z 0-9 - _ . , : / @ #"
        )
    return key


def check_type(value_type: str, prop: str) -> str:
    """``value_type`` in canonical (lower-case) spelling, else a 400 TwinError."""
    canonical = value_type.lower()
    if canonical not in VALUE_TYPES:
        raise bad_request(
            f"property {prop!r}: unknown type {_shown(value_type)}; one of {', '.join(VALUE_TYPES)}"
        )
    return canonical


def check_value(value: str, value_type: str, prop: str) -> str:
    """``value`` if it is allowed for a property of ``value_type``, else a 400 TwinError.

    The empty string means "no value" and is allowed only for ``string`` properties (a
    number or boolean cannot be empty, as in KubeEdge).
    """
    if value == "" and value_type in (STRING, DELETED):
        return value
    if len(value) > MAX_VALUE_CHARS:
        raise bad_request(
            f"property {prop!r}: value is {len(value)} characters; at most {MAX_VALUE_CHARS}"
        )
    if _VALUE_RE.fullmatch(value) is None:
        raise bad_request(
            f"property {prop!r}: value {_shown(value)} is invalid: use "
            "a-z A-Z 0-9 - _ . , : / @ # only"
        )
    model_type = _MODEL_TYPE_OF.get(value_type)
    if model_type is not None:
        try:
            parse_property_value(model_type, value)
        except ValueError as e:
            raise bad_request(f"property {prop!r} is of type {value_type}: {e}") from e
    return value


def twin_type_of_model(prop_type: str) -> str:
    """The twin value type of a DeviceModel property type (``DOUBLE`` -> ``float``, ...);
    unknown model types travel as ``string``."""
    return _TWIN_TYPE_OF_MODEL.get(prop_type.upper(), STRING)


def same_kind(type_a: str, type_b: str) -> bool:
    """Whether two twin types name the same kind of value (``int`` and ``integer`` do)."""

    def norm(t: str) -> str:
        return INT if t == INTEGER else t

    return norm(type_a) == norm(type_b)
