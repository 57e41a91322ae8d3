"""The ``ConfigMap`` and ``Secret`` kinds, shaped like Kubernetes' (top-level ``data``).

- ConfigMap: ``data`` (text), ``binaryData`` (base64), ``immutable``.
- Secret: ``data`` (base64), ``stringData`` (text, merged over ``data`` when used),
  ``type`` (``Opaque`` when absent), ``immutable``.

Validation and decoding only. This module must not encrypt, store or push anything; it never
puts secret values into error messages.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from edgeweave.models.base import Resource, raise_problems

KEY_RE = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
MAX_DATA_BYTES = 1024 * 1024
DEFAULT_SECRET_TYPE = "Opaque"  # noqa: S105 - a type name, not a password


def _check_keys(data: dict[str, str] | None) -> dict[str, str] | None:
    for key in data or {}:
        if not KEY_RE.match(key) or key in (".", ".."):
            raise ValueError(
                f"key {key!r} is invalid: use letters, digits, '-', '_' and '.' "
                "(it becomes a file name)"
            )
    return data


def _base64_problems(field: str, data: dict[str, str] | None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for key, value in (data or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problems.append(
                (
                    f"{field}.{key}",
                    f"the value of key {key!r} is not valid base64; encode it "
                    "(base64 -w0 FILE) or put plain text under stringData",
                )
            )
    return problems


def _size(*maps: dict[str, str] | None) -> int:
    return sum(len(k) + len(v) for m in maps for k, v in (m or {}).items())


class ConfigMap(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["ConfigMap"]
    data: dict[str, str] | None = None
    binaryData: dict[str, str] | None = None
    immutable: bool | None = None

    @field_validator("data")
    @classmethod
    def _data(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _check_keys(v)

    @field_validator("binaryData")
    @classmethod
    def _binary(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _check_keys(v)

    @model_validator(mode="after")
    def _cross_fields(self) -> ConfigMap:
        problems = _base64_problems("binaryData", self.binaryData)
        for key in sorted(set(self.data or {}) & set(self.binaryData or {})):
            problems.append((f"binaryData.{key}", "key also present in data; use one of them"))
        if _size(self.data, self.binaryData) > MAX_DATA_BYTES:
            problems.append(("data", f"total size is over {MAX_DATA_BYTES} bytes"))
        raise_problems(problems)
        return self

    def files(self) -> dict[str, bytes]:
        """Every key with its content as bytes."""
        out = {k: v.encode() for k, v in (self.data or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (self.binaryData or {}).items()})
        return out


class Secret(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Secret"]
    type: str = DEFAULT_SECRET_TYPE
    data: dict[str, str] | None = None
    stringData: dict[str, str] | None = None
    immutable: bool | None = None

    @field_validator("data")
    @classmethod
    def _data(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _check_keys(v)

    @field_validator("stringData")
    @classmethod
    def _string_data(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return _check_keys(v)

    @model_validator(mode="after")
    def _cross_fields(self) -> Secret:
        problems = _base64_problems("data", self.data)
        if _size(self.data, self.stringData) > MAX_DATA_BYTES:
            problems.append(("data", f"total size is over {MAX_DATA_BYTES} bytes"))
        raise_problems(problems)
        return self

    def files(self) -> dict[str, bytes]:
        """Every key decoded; ``stringData`` wins over ``data`` (as in Kubernetes)."""
        return secret_values({"data": self.data, "stringData": self.stringData})


def secret_values(obj: dict[str, Any]) -> dict[str, bytes]:
    """The decoded values of a validated Secret object (a plain dict)."""
    out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    return out
