"""Building one page of a list, the same way for every backend.

A backend reads rows ``(namespace, name, json)`` of one kind in key order, in chunks, inside
one snapshot, and feeds them to a :class:`PageBuilder` until it says it is done. The builder
applies the label selector, stops at ``limit`` items and issues the continue token.

Must not do I/O: the backend owns the queries and the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeweave.cloud.store._objects import decode_continue, decode_json, encode_continue
from edgeweave.cloud.store.base import JSONObject, ListResult
from edgeweave.errors import BadRequest
from edgeweave.models.selectors import LabelSelector

ListRow = tuple[str, str, str]  # (namespace, name, json)
SELECTOR_CHUNK_ROWS = 500


class PageBuilder:
    """Feed key-ordered rows with :meth:`feed` while :attr:`done` is false and
    :attr:`chunk_rows` says how many to read (None = all the rest)."""

    def __init__(
        self,
        kind: str,
        namespace: str | None,
        selector: LabelSelector | None,
        limit: int | None,
        continue_token: str | None,
    ) -> None:
        if limit is not None and limit <= 0:
            raise BadRequest(f"limit must be a positive integer, got {limit}")
        self.kind = kind
        self.namespace = namespace
        self.selector = selector if selector is not None and not selector.empty else None
        self.limit = limit
        self.after: tuple[str, str] | None = (
            decode_continue(continue_token, kind, namespace) if continue_token else None
        )
        self.items: list[JSONObject] = []
        self.done = False
        self._token: str | None = None

    @property
    def chunk_rows(self) -> int | None:
        if self.limit is None:
            return None
        # one row past the page tells whether another page exists
        wanted = self.limit - len(self.items) + 1
        return max(wanted, SELECTOR_CHUNK_ROWS) if self.selector else wanted

    def feed(self, rows: Sequence[ListRow]) -> None:
        chunk = self.chunk_rows
        for namespace, name, text in rows:
            if self.limit is not None and len(self.items) >= self.limit:
                # a further row exists: resume after the last item returned
                self._token = encode_continue(self.kind, self.namespace, self.after or ("", ""))
                self.done = True
                return
            self.after = (namespace, name)
            obj = decode_json(text)
            if self.selector is None or self.selector.matches(
                obj.get("metadata", {}).get("labels")
            ):
                self.items.append(obj)
        if chunk is None or len(rows) < chunk:
            self.done = True

    def result(self, resource_version: int) -> ListResult:
        return ListResult(self.items, resource_version, self._token)
