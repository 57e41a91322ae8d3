"""What a kind is: its names, where it lives in the API, and the model that validates it.

A :class:`KindInfo` is pure data. The registry of all kinds is in :mod:`edgeweave.models.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


@dataclass(frozen=True)
class KindInfo:
    kind: str  # "App"
    group: str  # "edgeweave.io"
    version: str  # "v1"
    plural: str  # "apps"
    singular: str  # "app"
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    # validates the whole object (envelope + spec + status); None = envelope only
    model: type[BaseModel] | None = None
    # columns `edgeweave get` shows: (header, dotted path into the object); wide adds more
    columns: tuple[tuple[str, str], ...] = ()
    wide_columns: tuple[tuple[str, str], ...] = ()
    # top-level fields besides the envelope the kind allows (ConfigMap `data`, ...)
    extra_fields: tuple[str, ...] = field(default=())
    # the cloud writes these objects; the API refuses users' writes (Endpoints)
    read_only: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def names(self) -> tuple[str, ...]:
        """Every name a user may type for this kind, lowercase."""
        return (self.kind.lower(), self.plural, self.singular, *self.short_names)
