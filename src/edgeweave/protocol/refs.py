"""Structured references to resources, and the digest of a held set.

A reference is a structure — never a ``"kind/ns/name"`` string to split by hand. ``__str__``
exists for log lines only; nothing may parse it back.

``held_digest`` is the one definition both sides use to compare what a node holds with what the
cloud recorded as acked (docs/design/edge-link.md §3): sha256 hex over the sorted lines
``f"{kind}/{namespace}/{name}={rv}\\n"``. Do not change it without changing the protocol.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeweave.errors import InvalidObject
from edgeweave.protocol._validate import check_of, integer, record, text

# Bounds that keep a hostile frame from building huge objects; real names are far shorter
# (DNS-1123: 253 chars). Kinds and namespaces are shorter still.
MAX_REF_PART_CHARS = 512

_REF_PART = check_of(text(MAX_REF_PART_CHARS))


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """Which object: ``kind``, ``namespace`` ("" for cluster-scoped kinds) and ``name``."""

    kind: str = field(metadata=_REF_PART)
    namespace: str = field(metadata=_REF_PART)
    name: str = field(metadata=_REF_PART)

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ResourceRef:
        """The reference of a resource object (a dict with ``kind`` and ``metadata``).

        Raises ``InvalidObject`` (naming the field) when kind or name is missing.
        """
        kind = obj.get("kind")
        meta = obj.get("metadata")
        if not isinstance(kind, str) or not kind:
            raise InvalidObject("object has no kind", field="kind")
        if not isinstance(meta, Mapping):
            raise InvalidObject(f"{kind} object has no metadata", field="metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidObject(f"{kind} object has no metadata.name", field="metadata.name")
        namespace = meta.get("namespace") or ""
        if not isinstance(namespace, str):
            raise InvalidObject(
                f"{kind} {name}: metadata.namespace must be a string", field="metadata.namespace"
            )
        return cls(kind=kind, namespace=namespace, name=name)

    def __str__(self) -> str:
        # for logs only
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Versioned:
    """A reference paired with the resourceVersion it was written (or acked) at."""

    ref: ResourceRef = field(metadata=check_of(record(ResourceRef)))
    rv: int = field(metadata=check_of(integer()))


def held_digest(items: Iterable[Versioned]) -> str:
    """sha256 hex of a held set; independent of the order of ``items``."""
    lines = sorted(f"{v.ref.kind}/{v.ref.namespace}/{v.ref.name}={v.rv}\n" for v in items)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
    return digest.hexdigest()
