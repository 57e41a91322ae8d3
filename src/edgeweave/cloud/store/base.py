"""The store seam: what every state-store backend provides.

Objects are plain JSON dicts in the Kubernetes shape (``apiVersion``, ``kind``, ``metadata``,
``spec``, ``status``); the store does not validate specs (the API does) but owns the
server-side metadata:

- ``metadata.resourceVersion``: a single store-wide integer, increased by every write
  (create, update, delete), rendered as a decimal **string** in objects (Kubernetes style);
- ``metadata.uid`` (uuid4 at create), ``metadata.creationTimestamp`` (RFC 3339 UTC, at create),
  ``metadata.generation`` (1 at create, +1 whenever ``spec`` changes).

Writes are compare-and-set: an update or delete that names a ``resourceVersion`` other than
the stored one raises :class:`~edgeweave.errors.Conflict`. Every write appends one entry to a
change log in the same transaction, in resourceVersion order; :meth:`Store.open_watch`
replays the log from any retained version and then follows new writes. Asking for history
older than what was compacted raises :class:`~edgeweave.errors.Gone` (the client relists).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from edgeweave.models.selectors import LabelSelector

JSONObject = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    object: JSONObject  # the object after the write (for DELETED: as it was, with the new rv)
    resource_version: int


@dataclass(frozen=True)
class ListResult:
    items: list[JSONObject]
    resource_version: int  # store-wide version the list is consistent with
    continue_token: str | None = None  # pass back as ``continue_token`` for the next page


@dataclass(frozen=True)
class WatchFilter:
    kind: str | None = None  # None = every kind
    namespace: str | None = None  # None = every namespace
    selector: LabelSelector = field(default_factory=LabelSelector)
    name: str | None = None  # one object only

    def matches(self, obj: JSONObject) -> bool:
        meta = obj.get("metadata", {})
        if self.kind is not None and obj.get("kind") != self.kind:
            return False
        if self.namespace is not None and (meta.get("namespace") or "") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return self.selector.matches(meta.get("labels"))


class Watch(Protocol):
    """An open watch: iterate for events; closed when its context manager exits."""

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...


class Store(Protocol):
    """A state store. ``namespace`` is ``""`` for cluster-scoped kinds (Node)."""

    async def create(self, obj: JSONObject) -> JSONObject:
        """Insert; raises AlreadyExists. Returns the stored object with server metadata set."""
        ...

    async def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        """Raises NotFound."""
        ...

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        """Objects of ``kind`` (all namespaces when ``namespace`` is None), ordered by
        (namespace, name). ``limit`` pages; the result's ``continue_token`` fetches the next."""
        ...

    async def update(self, obj: JSONObject) -> JSONObject:
        """Replace spec/status/labels/annotations of an existing object. If
        ``metadata.resourceVersion`` is set it must equal the stored one (else Conflict);
        if absent the update is unconditional. uid and creationTimestamp are kept;
        generation increases when spec changed. Raises NotFound."""
        ...

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: int | None = None
    ) -> JSONObject:
        """Remove; CAS when ``resource_version`` is given. Returns the deleted object."""
        ...

    async def current_resource_version(self) -> int: ...

    def open_watch(
        self, since: int, flt: WatchFilter | None = None
    ) -> AbstractAsyncContextManager[Watch]:
        """Events with resourceVersion > ``since`` matching ``flt``, in order, then live ones.
        Raises Gone (on enter) when ``since`` is older than the retained change log."""
        ...

    async def compact(self, keep_last: int) -> int:
        """Drop all but the newest ``keep_last`` change-log entries; returns the oldest
        resourceVersion a watch may still start from."""
        ...

    async def aclose(self) -> None: ...
