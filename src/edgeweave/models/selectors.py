"""Label selectors in the Kubernetes string syntax, parsed once and matched many times.

Supported terms, comma separated (all must hold):
``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``,
``key`` (exists) and ``!key`` (does not exist). Equality selectors also come as dicts
(``nodeSelector: {role: camera}``) — :meth:`LabelSelector.from_mapping`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgeweave.errors import BadRequest

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(notin|in)\s*\(([^()]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
MAX_SELECTOR_CHARS = 4096


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        # notin: also true when the key is absent (Kubernetes semantics)
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse ``text``; raises :class:`BadRequest` naming the bad term."""
        if not text or not text.strip():
            return cls()
        if len(text) > MAX_SELECTOR_CHARS:
            raise BadRequest(f"label selector longer than {MAX_SELECTOR_CHARS} characters")
        return cls(tuple(_parse_term(term) for term in _split_terms(text)))

    @classmethod
    def from_mapping(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(tuple(Requirement(k, "in", frozenset([v])) for k, v in labels.items()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.op == "exists":
                parts.append(r.key)
            elif r.op == "!exists":
                parts.append("!" + r.key)
            elif r.op == "in" and len(r.values) == 1:
                parts.append(f"{r.key}={next(iter(r.values))}")
            else:
                parts.append(f"{r.key} {r.op} ({','.join(sorted(r.values))})")
        return ",".join(parts)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise BadRequest(f"label selector {text!r}: unbalanced ')'")
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise BadRequest(f"label selector {text!r}: unbalanced '('")
    terms.append("".join(current))
    return terms


def _parse_term(term: str) -> Requirement:
    eq = _EQ_RE.match(term)
    if eq:
        key, op, value = eq.groups()
        return Requirement(key, "notin" if op == "!=" else "in", frozenset([value]))
    st = _SET_RE.match(term)
    if st:
        bang, key, op, values = st.groups()
        if op:
            if bang:
                raise BadRequest(f"label selector term {term.strip()!r}: '!' only goes with a key")
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            return Requirement(key, op, vals)
        return Requirement(key, "!exists" if bang else "exists")
    raise BadRequest(
        f"label selector term {term.strip()!r} is not one of key=value, key!=value, "
        "key in (a,b), key notin (a,b), key, !key"
    )
