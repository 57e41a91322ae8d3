"""Feeds the scheduler from the state store: ``Pipeline``, ``Repo`` and ``Node`` objects, status.

Per kind, one list and then one watch from the version read before listing (like the hub's
dispatcher); a compacted history (``Gone``) relists and removes what disappeared meanwhile.

- A Pipeline is parsed with the engine's checks (globs compile, ``join_on``/``group_by`` read
  existing capture groups) and handed to :meth:`Scheduler.upsert` and, for a Copier, to the
  :class:`CopierPublisher`, and every one to the Merger timer (its deadline); a deleted one to
  :meth:`Scheduler.remove` (its running job is cancelled; its output repo stays).
- Pipelines and Nodes go to the cloud workers' controller (:mod:`.workers`), which starts
  deciding once all three kinds were listed.
- A Repo object (``edgeweave apply`` of ``kind: Repo``) makes sure a cloud repo of that name
  exists; deleting the object leaves the data (``edgeweave repo delete`` removes it). For a
  repo located on a node the cloud's repo holds the commits the node reports (metadata and
  file lists, :mod:`.located`), and ``located`` maps it to its node.
- :func:`write_status` writes a Pipeline's ``status`` with compare-and-set, retried
  when someone else wrote in between; ``status.nodes`` (edge nodes' reports) and
  ``status.merger`` are kept.

Must not run jobs or read repo contents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edgeweave.cloud.pipelines.copier import CopierPublisher
from edgeweave.cloud.pipelines.located import location_of
from edgeweave.cloud.pipelines.mergetimer import MergeTimer
from edgeweave.cloud.pipelines.workers import CloudWorkers
from edgeweave.cloud.store.base import JSONObject, Store, WatchFilter, iter_objects
from edgeweave.errors import AlreadyExists, Conflict, EdgeweaveError, Gone, NotFound, StoreError
from edgeweave.pipelines.repo import Repos
from edgeweave.pipelines.scheduler import Scheduler, Status
from edgeweave.pipelines.spec import PipelineDoc, stored_pipeline_doc

log = logging.getLogger(__name__)

PIPELINE, REPO, NODE = "Pipeline", "Repo", "Node"
LIST_PAGE = 500
RETRY_DELAY_S = 1.0
CAS_ATTEMPTS = 8

Handler = Callable[[str, JSONObject], Awaitable[None]]  # (event type, object)


def _meta(obj: JSONObject) -> tuple[str, str, int]:
    meta = obj.get("metadata") or {}
    return (
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        int(meta.get("generation") or 0),
    )


class StoreFeed:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        repos: Repos,
        copiers: CopierPublisher,
        timer: MergeTimer,
        workers: CloudWorkers,
    ) -> None:
        self._store = store
        self._scheduler = scheduler
        self._repos = repos
        self._copiers = copiers
        self._timer = timer
        self._workers = workers
        self.located: dict[str, str] = {}  # repo -> the node it lives on (Repo objects)
        self.ready = asyncio.Event()  # set once both kinds were listed

    async def run(self) -> None:
        """Follow the three kinds until cancelled."""
        listed = [asyncio.Event(), asyncio.Event(), asyncio.Event()]

        async def ready_when_listed() -> None:
            for event in listed:
                await event.wait()
            self.ready.set()
            self._workers.start()

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._follow(PIPELINE, self._on_pipeline, listed[0]), name="pp")
            tasks.create_task(self._follow(REPO, self._on_repo, listed[1]), name="repos")
            tasks.create_task(self._follow(NODE, self._on_node, listed[2]), name="nodes")
            tasks.create_task(ready_when_listed(), name="ready")

    async def _follow(self, kind: str, handle: Handler, listed: asyncio.Event) -> None:
        known: set[tuple[str, str]] = set()
        while True:
            try:
                since = await self._store.current_resource_version()
                seen = await self._list(kind, handle)
                for namespace, name in known - seen:
                    await handle("DELETED", {"metadata": {"namespace": namespace, "name": name}})
                known = seen
                listed.set()
                async with self._store.open_watch(since, WatchFilter(kind=kind)) as watch:
                    async for event in watch:
                        namespace, name, _ = _meta(event.object)
                        if event.type == "DELETED":
                            known.discard((namespace, name))
                        else:
                            known.add((namespace, name))
                        await handle(event.type, event.object)
                return  # the store closed the watch: it is shutting down
            except Gone:
                log.warning("pipeline worker: the %s watch fell behind; relisting", kind)
            except StoreError as e:
                log.warning("pipeline worker: %s watch failed (%s); retrying", kind, e)
                await asyncio.sleep(RETRY_DELAY_S)

    async def _list(self, kind: str, handle: Handler) -> set[tuple[str, str]]:
        seen: set[tuple[str, str]] = set()
        async for obj in iter_objects(self._store, kind, LIST_PAGE):
            namespace, name, _ = _meta(obj)
            seen.add((namespace, name))
            await handle("ADDED", obj)
        return seen

    async def _on_pipeline(self, event_type: str, obj: JSONObject) -> None:
        namespace, name, generation = _meta(obj)
        if event_type == "DELETED":
            await self._scheduler.remove(namespace, name)
            self._copiers.remove(name)
            self._timer.remove(namespace, name)
            self._workers.pipeline_event(event_type, obj, None)
            return
        try:
            doc: PipelineDoc | None = stored_pipeline_doc(obj)
            problem = ""
        except EdgeweaveError as e:
            doc, problem = None, e.message
        except ValueError as e:  # pydantic's ValidationError: the API let a bad spec in
            doc, problem = None, str(e)
        self._workers.pipeline_event(event_type, obj, doc)  # first: where it runs
        await self._scheduler.upsert(namespace, name, doc, generation, problem)
        self._copiers.upsert(namespace, name, doc)
        self._timer.upsert(obj)

    async def _on_node(self, event_type: str, obj: JSONObject) -> None:
        self._workers.node_event(event_type, obj)

    async def _on_repo(self, event_type: str, obj: JSONObject) -> None:
        _, name, _ = _meta(obj)
        if event_type == "DELETED":
            self.located.pop(name, None)
            return
        spec: dict[str, Any] = obj.get("spec") or {}
        node = location_of(obj)
        if node is not None:  # its bytes live there; its commits are recorded here
            self.located[name] = node
        else:
            self.located.pop(name, None)
        try:
            await self._repos.create_repo(name, str(spec.get("description") or ""))
        except AlreadyExists:
            return
        except EdgeweaveError as e:
            log.warning("pipeline worker: cannot create repo %s: %s", name, e.message)


async def write_status(store: Store, namespace: str, name: str, status: Status) -> None:
    """A Pipeline's ``status``, compare-and-set, retried when someone wrote in between."""
    for _ in range(CAS_ATTEMPTS):
        try:
            current = await store.get(PIPELINE, namespace, name)
        except NotFound:
            return  # deleted meanwhile
        kept = {  # what edge nodes reported (the hub writes it) and a Merger's state
            k: v for k, v in (current.get("status") or {}).items() if k in ("nodes", "merger")
        }
        status = {**status, **kept}
        if current.get("status") == status:
            return
        current["status"] = status
        try:
            await store.update(current)
            return
        except Conflict:
            continue
    log.warning("pipeline %s/%s: status kept changing; not written", namespace, name)
