"""The discovery document (``GET /apis``) and resolving what a user typed to a kind.

The server lists its kinds as ``{"kinds": [{"kind", "group", "version", "plural", "singular",
"shortNames", "namespaced", "columns"?, "wideColumns"?}]}``; ``columns`` entries are
``{"name", "jsonPath"}``. A user may name a kind by its kind, plural, singular or short name,
in any case. This module is pure data: it must not send requests (the clients fetch and cache
the document) and must not import the server's kind registry (pydantic is slow to import).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeweave.errors import APIError, BadRequest, UnknownKind


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str  # ".status.phase" or "status.phase"


@dataclass(frozen=True)
class KindRef:
    kind: str
    group: str
    version: str
    plural: str
    singular: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    columns: tuple[Column, ...] = ()
    wide_columns: tuple[Column, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def names(self) -> tuple[str, ...]:
        short = (s.lower() for s in self.short_names)
        return (self.kind.lower(), self.plural.lower(), self.singular.lower(), *short)

    def collection_path(self, namespace: str | None) -> str:
        """The collection path; ``namespace=None`` on a namespaced kind means all namespaces."""
        base = f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def object_path(self, name: str, namespace: str | None) -> str:
        if self.namespaced and not namespace:
            raise BadRequest(f"{self.kind} is namespaced: give a namespace for {name!r}")
        return f"{self.collection_path(namespace)}/{name}"


class Discovery:
    """The kinds a server knows, indexed by every name a user may type."""

    def __init__(self, kinds: list[KindRef]) -> None:
        self.kinds = kinds
        self._by_name: dict[str, KindRef] = {}
        self._by_api: dict[tuple[str, str], KindRef] = {}
        for ref in kinds:
            for name in ref.names():
                self._by_name.setdefault(name, ref)
            self._by_api[(ref.api_version, ref.kind)] = ref

    @classmethod
    def from_document(cls, doc: Any) -> Discovery:
        """Parse the ``GET /apis`` body; APIError when it is not the documented shape."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("kinds"), list):
            raise APIError("the server's discovery document (GET /apis) has no `kinds` list")
        try:
            return cls([_kind_ref(entry) for entry in doc["kinds"]])
        except (KeyError, TypeError, AttributeError) as e:
            raise APIError(f"the server's discovery document has a malformed kind: {e}") from e

    def resolve(self, name: str) -> KindRef:
        """The kind a user means by ``name``, any case; UnknownKind names the known ones."""
        ref = self._by_name.get(name.lower())
        if ref is None:
            # "apps.edgeweave.io" style
            plural, _, group = name.lower().partition(".")
            ref = self._by_name.get(plural) if group else None
            if ref is None or ref.group.lower() != group:
                known = ", ".join(sorted(k.plural for k in self.kinds))
                raise UnknownKind(f'unknown kind "{name}"; known kinds: {known}', field="kind")
        return ref

    def for_object(self, obj: Mapping[str, Any]) -> KindRef:
        """The kind of a manifest, by its ``apiVersion`` and ``kind``."""
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if not isinstance(kind, str) or not kind:
            raise UnknownKind("the object has no `kind`", field="kind")
        ref = self._by_api.get((str(api_version), kind))
        if ref is not None:
            return ref
        candidates = [k for k in self.kinds if k.kind == kind]
        if candidates:
            versions = ", ".join(c.api_version for c in candidates)
            raise UnknownKind(
                f"kind {kind} has no apiVersion {api_version!r}; use {versions}",
                field="apiVersion",
            )
        known = ", ".join(sorted(k.kind for k in self.kinds))
        raise UnknownKind(f'unknown kind "{kind}"; known kinds: {known}', field="kind")


def _kind_ref(entry: Mapping[str, Any]) -> KindRef:
    kind = str(entry["kind"])
    return KindRef(
        kind=kind,
        group=str(entry["group"]),
        version=str(entry["version"]),
        plural=str(entry.get("plural") or kind.lower() + "s"),
        singular=str(entry.get("singular") or kind.lower()),
        short_names=tuple(str(s) for s in entry.get("shortNames") or ()),
        namespaced=bool(entry.get("namespaced", True)),
        columns=_columns(entry.get("columns")),
        wide_columns=_columns(entry.get("wideColumns")),
    )


def _columns(raw: Any) -> tuple[Column, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for col in raw:
        if isinstance(col, Mapping) and isinstance(col.get("name"), str):
            out.append(Column(col["name"], str(col.get("jsonPath", ""))))
    return tuple(out)
