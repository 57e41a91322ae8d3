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

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from edgeweave.models.selectors import LabelSelector

JSONObject = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class WatchEvent:
    """One change: its type, the object after the write (for DELETED: as it was, with the new
    resourceVersion) and that version. A watch over a change log hands the object over as the
    stored JSON ``text`` and decodes it only when :attr:`object` is read, so a consumer that
    passes it on (an API watch stream) neither decodes nor encodes it again. ``kind``, when
    given, is the object's kind, known without decoding it."""

    __slots__ = ("_object", "_text", "kind", "resource_version", "type")

    def __init__(
        self,
        type: EventType,
        object: JSONObject | None = None,
        resource_version: int = 0,
        *,
        text: str | None = None,
        kind: str | None = None,
    ) -> None:
        if object is None and text is None:
            raise ValueError("a watch event needs the object or its JSON text")
        self.type = type
        self.resource_version = resource_version
        self.kind = kind
        self._object = object
        self._text = text

    @property
    def object(self) -> JSONObject:
        if self._object is None:
            assert self._text is not None
            self._object = json.loads(self._text)
        return self._object

    @property
    def text(self) -> str:
        """The object as compact JSON (the stored text when the event carries it)."""
        if self._text is None:
            self._text = json.dumps(self._object, separators=(",", ":"), ensure_ascii=False)
        return self._text

    def __eq__(self, other: Any) -> bool:  # ``object`` here is the property
        if not isinstance(other, WatchEvent):
            return NotImplemented
        return (self.type, self.resource_version, self.object) == (
            other.type,
            other.resource_version,
            other.object,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and the object is mutable

    def __repr__(self) -> str:
        return f"WatchEvent({self.type!r}, rv={self.resource_version}, {self.text[:80]!r})"


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
    kinds: frozenset[str] | None = None  # None = every kind; else only these (and ``kind``)

    def matches(self, obj: JSONObject) -> bool:
        meta = obj.get("metadata", {})
        if self.kind is not None and obj.get("kind") != self.kind:
            return False
        if self.kinds is not None and obj.get("kind") not in self.kinds:
            return False
        if self.namespace is not None and (meta.get("namespace") or "") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return self.selector.matches(meta.get("labels"))


class Watch(Protocol):
    """An open watch: iterate for events; closed when its context manager exits."""

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    async def next_event(self, idle_s: float) -> WatchEvent | None:
        """The next event, or None when ``idle_s`` pass without one (nothing is lost, the
        watch stays open); StopAsyncIteration once the watch ended."""
        ...


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


AckKey = tuple[str, str, str]  # (kind, namespace, name) of a desired object sent to a node
AckItem = tuple[str, str, str, int]  # ... and the resourceVersion the node acked it at
StatusWrite = tuple[str, str, str, JSONObject]  # (kind, namespace, name, status merge patch)


# (node, time in Unix seconds, object kind, object namespace, object name, type, reason, message)
EventRow = tuple[str, float, str, str, str, str, str, str]
MAX_EVENT_TEXT = 4096  # characters kept of an event's reason or message

# one reported twin value: (device namespace, device name, property, time in Unix ms, value)
TwinSample = tuple[str, str, str, int, str]
# desired values a node set on its own, waiting for the cloud to adopt them (hub/twinadopt.py):
# (node, device namespace, device name, the items as JSON text)
Adoption = tuple[str, str, str, str]
ClaimedAdoption = tuple[int, str, str, str, str]  # (id, *Adoption)
DEFAULT_TWIN_HISTORY_POINTS = 10_000  # values kept per (device, property)
DEFAULT_TWIN_HISTORY_MAX_AGE_S = 7 * 86400.0  # values older than this are dropped


class NodeSyncStore(Protocol):
    """Per-node sync bookkeeping the hub keeps beside the objects (docs/design/edge-link.md).

    - acks: the resourceVersion each desired object was last persisted at by a node. An ack
      for an object that no longer exists in the store is a delete ack: its row is removed
      (a node holds nothing for a deleted object), so the acked set mirrors the node's held set.
    - upstream: the highest outbox sequence number committed per node, and the ``events``
      table those commits append to (newest ``events_retention`` kept).
    - twin history: the reported values of device properties (``device.twin`` samples),
      appended by the same commits; per (device, property) at most ``twin_history_points``
      are kept and none older than ``twin_history_max_age_s`` (enforced on insert, for the
      properties an insert touches).
    - used join tokens, so a join token works once.
    """

    async def acked_versions(self, node: str) -> dict[AckKey, int]:
        """``(kind, namespace, name) -> rv`` the node has acked."""
        ...

    async def record_acks(self, node: str, items: list[AckItem]) -> None:
        """Upsert acks; delete acks (object gone from the store) remove their rows."""
        ...

    async def replace_acks(self, node: str, items: list[AckItem]) -> None:
        """Make ``items`` the node's whole acked set (after a resync's ``held``)."""
        ...

    async def reset_node_sync(self, node: str) -> None:
        """Forget what the node acked and which upstream seq it reached (a re-join: the
        machine's data dir may be new, so its sequence numbers start over)."""
        ...

    async def upstream_committed_seq(self, node: str) -> int:
        """The highest committed upstream seq of ``node``; 0 when none."""
        ...

    async def commit_upstream(
        self,
        node: str,
        committed_seq: int,
        events: Sequence[EventRow],
        status_writes: list[StatusWrite],
        samples: Sequence[TwinSample] = (),
        adoptions: Sequence[Adoption] = (),
    ) -> int:
        """In one transaction: append ``events``, merge each status patch into its object's
        ``status`` (a write with a new resourceVersion and a MODIFIED change; objects that no
        longer exist are skipped), append ``samples`` to the twin history (as reported by
        ``node``; retention applied to the properties they touch), keep ``adoptions`` until
        :meth:`finish_adoption` and store ``committed_seq``.
        A ``committed_seq`` not above the stored one is a replay: nothing is written. Returns
        the stored seq afterwards.

        An event is an :data:`EventRow`; the caller cuts reason and message to
        ``MAX_EVENT_TEXT``."""
        ...

    async def list_twin_history(
        self,
        namespace: str,
        name: str,
        property: str | None = None,
        *,
        since_ms: int | None = None,
        limit: int = 1000,
    ) -> list[JSONObject]:
        """The newest ``limit`` reported values of device ``namespace/name`` (one property, or
        every property when None) at or after ``since_ms``, oldest first, each
        ``{"property", "value", "timestamp"}`` (timestamp: Unix ms)."""
        ...

    async def delete_twin_history(self, namespace: str, name: str) -> int:
        """Forget every reported value of device ``namespace/name`` (it was deleted); returns
        how many were dropped."""
        ...

    async def twin_history_devices(self) -> list[tuple[str, str]]:
        """``(namespace, name)`` of every device that has twin history, sorted."""
        ...

    async def claim_adoptions(
        self, owner: str, lease_s: float, limit: int
    ) -> list[ClaimedAdoption]:
        """Up to ``limit`` kept adoptions, oldest first, that nobody holds (never claimed, or
        the holder's lease ran out): now held by ``owner`` for ``lease_s`` seconds. Several
        cloud replicas claiming at once never get the same one."""
        ...

    async def finish_adoption(self, adoption_id: int, events: Sequence[EventRow] = ()) -> bool:
        """Forget an adoption that was handled and, in the same transaction, append the
        ``events`` its handling produced (what the cloud itself reports about the Device, e.g.
        a twin conflict; the rows and retention of :meth:`commit_upstream`). False, and no
        events written, when it was gone already (another replica finished it): an unknown id
        is no error."""
        ...

    async def list_events(
        self,
        object_kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        node: str | None = None,
        limit: int = 100,
    ) -> list[JSONObject]:
        """The newest ``limit`` matching events, oldest first, each shaped as accepted by
        :meth:`commit_upstream` plus ``id`` and ``node``."""
        ...

    async def mark_token_used(self, jti: str, expires_at: int, now: int) -> bool:
        """Record a join token's ``jti``; False when it was already used. Entries whose
        ``expires_at`` is before ``now`` are forgotten (such tokens fail verification)."""
        ...


class CloudStore(Store, NodeSyncStore, Protocol):
    """What the cloud's composition root opens: objects plus node sync tables."""


LIST_PAGE = 1000  # objects per page when a caller reads a whole kind


async def iter_objects(
    store: Store, kind: str, page_size: int = LIST_PAGE
) -> AsyncIterator[JSONObject]:
    """Every object of ``kind``, page by page (a caller that lists a whole kind never holds
    an unbounded result set from one call)."""
    token: str | None = None
    while True:
        page = await store.list(kind, limit=page_size, continue_token=token)
        for obj in page.items:
            yield obj
        token = page.continue_token
        if not token:
            return
