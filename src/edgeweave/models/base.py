"""Building blocks shared by the kind models: base classes, common field types, problems.

- :class:`StrictModel` rejects unknown fields (typos surface as errors); :class:`OpenModel`
  keeps unknown fields (formats owned by other systems, system-written status).
- :data:`Argv` is a command as an argv list; a shell string is refused with a hint.
- :func:`raise_problems` lets an after-validator report several cross-field problems, each
  with its own relative path; :mod:`edgeweave.models.validation` expands them into
  ``path: message`` entries.

Pure data and validation only: nothing here does I/O or knows about the registry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from edgeweave.models.meta import NAME_RE, ObjectMeta

PROBLEMS_ERROR = "edgeweave_problems"
# union member tags used with ``Discriminator``; error paths skip them
UNION_TAGS = frozenset({"by-name", "by-object"})

Port = Annotated[int, Field(ge=1, le=65535)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StrictModel(BaseModel):
    """Unknown fields are errors; scalars are not coerced (``"5"`` is not an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OpenModel(BaseModel):
    """Unknown fields are kept as they are; known fields are still checked strictly."""

    model_config = ConfigDict(extra="allow", strict=True)


def _check_argv(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            f"must be an argv list such as [python3, app.py], not the string {value!r}: "
            "commands run without a shell, so write each argument as a list item"
        )
    if not isinstance(value, list):
        raise ValueError("must be an argv list of strings, e.g. [python3, app.py]")
    if not value:
        raise ValueError("must not be empty: give at least the program to run")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(
                f"argument [{i}] is the {type(item).__name__} {item!r}; every argument must "
                f'be a string, so quote it: "{item}"'
            )
    if not value[0]:
        raise ValueError("the program (argument [0]) must not be empty")
    return value


# A command as an argv list of strings, never a shell string.
Argv = Annotated[list[str], BeforeValidator(_check_argv)]


def check_object_name(value: str, what: str = "name") -> str:
    """A DNS-1123 name as metadata.name uses (for references to other objects)."""
    if not NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} is not a valid object name: lowercase letters, digits, '-' "
            "and '.', starting and ending alphanumeric"
        )
    return value


def check_env(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not ENV_NAME_RE.match(key):
            raise ValueError(
                f"environment variable name {key!r} is invalid: use letters, digits and '_', "
                "not starting with a digit"
            )
    return env


def join_path(prefix: str, rel: str) -> str:
    """``join_path("spec", "ports[1].name") == "spec.ports[1].name"``."""
    if not prefix:
        return rel
    if not rel:
        return prefix
    return prefix + rel if rel.startswith("[") else f"{prefix}.{rel}"


def duplicates(names: Sequence[str]) -> list[int]:
    """Indexes of items whose name already appeared earlier in ``names``."""
    seen: set[str] = set()
    dup: list[int] = []
    for i, name in enumerate(names):
        if name in seen:
            dup.append(i)
        seen.add(name)
    return dup


def raise_problems(problems: Sequence[tuple[str, str]]) -> None:
    """Raise one validation error carrying every ``(relative path, message)`` problem."""
    if not problems:
        return
    summary = "; ".join(f"{path}: {msg}" if path else msg for path, msg in problems)
    raise PydanticCustomError(
        PROBLEMS_ERROR, "{summary}", {"summary": summary, "problems": tuple(problems)}
    )


class Resource(BaseModel):
    """The envelope fields every kind model shares; subclasses pin ``apiVersion``/``kind``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    apiVersion: str
    kind: str
    metadata: ObjectMeta


def str_or_object(value: Any) -> str | None:
    """Discriminator for ``"cloud" | {...}`` fields: which union member to validate with."""
    if isinstance(value, str):
        return "by-name"
    if isinstance(value, dict | BaseModel):
        return "by-object"
    return None


def exactly_one(model: BaseModel, fields: Sequence[str]) -> list[tuple[str, str]]:
    """A problem unless exactly one of ``fields`` is set on ``model``."""
    given = [name for name in fields if getattr(model, name) is not None]
    if len(given) == 1:
        return []
    return [("", f"set exactly one of {', '.join(fields)} (got {', '.join(given) or 'none'})")]
