"""Workflow runs in the cloud: started on request or by a schedule, kept in the state store.

:meth:`Workflows.start_run` reads the ``Workflow`` object, checks the run's parameters against
the declared ones (the error names the parameter), makes sure the workflow's output repo
exists and creates a ``WorkflowRun`` object (``<workflow>-<10 hex>``, or
``<workflow>-<tick time>`` for a scheduled run — so two replicas firing the same tick
create one run), then drives the run on the pipeline worker (``pipelines/dag.py`` decides
when each step runs, ``pipelines/dagstep.py`` runs each try as a job). The run's ``status``
(the run's and every step's state, tries, jobs, timings, output commit) is written to the
state store — SQLite or PostgreSQL — by one writer per run that coalesces changes, so steps
never wait on the store; the final status is written before the run counts as done.

Restarts: a run is not resumed. On start, every run a stopped cloud left ``running`` is
marked ``interrupted`` (its unfinished steps ``killed``), with a message saying to start a
new run; its finished steps' outputs stay in the repo. A cloud that stops cleanly marks its
runs the same way as it closes. :meth:`Workflows.wait_run` waits for a run to end.

Must not know HTTP (``cloud/api/workflows.py`` does) or parse schedules (``wfschedule.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime
from functools import partial
from typing import Any

from edgeweave.aio.tasks import Supervisor
from edgeweave.cloud.store.base import JSONObject, Store
from edgeweave.errors import AlreadyExists, Conflict, EdgeweaveError, NotFound, StoreError
from edgeweave.models.workflows import WORKFLOW_LABEL, Workflow
from edgeweave.pipelines.dag import (
    KILLED,
    RETRYING,
    RUN_DONE,
    RUN_FAILED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
    RUNNING,
    RunStatus,
    run_dag,
)
from edgeweave.pipelines.dagspec import checked_workflow, resolve_params
from edgeweave.pipelines.dagstep import RunRef, StepRunner

log = logging.getLogger(__name__)

WORKFLOW, RUN = "Workflow", "WorkflowRun"
CAS_ATTEMPTS = 8
INTERRUPTED = "the cloud stopped during the run; start a new run (finished steps' outputs stay)"


def scheduled_run_name(workflow: str, tick: datetime) -> str:
    stamp = tick.strftime("%Y%m%d-%H%M%S")
    millis = tick.microsecond // 1000
    return f"{workflow}-{stamp}" + (f"-{millis:03d}" if millis else "")


class Workflows:
    def __init__(self, store: Store, steps: StepRunner, supervisor: Supervisor) -> None:
        self.store = store
        self._store = store
        self._steps = steps
        self._supervisor = supervisor
        self._done: dict[tuple[str, str], asyncio.Event] = {}

    # ---- starting and waiting ----------------------------------------------------------------

    async def start_run(
        self,
        namespace: str,
        name: str,
        params: dict[str, Any],
        *,
        trigger: str = "manual",
        run_name: str | None = None,
    ) -> JSONObject:
        """Create the run and start it; InvalidObject naming a bad parameter, NotFound for an
        unknown workflow, AlreadyExists when ``run_name`` was taken (a tick already fired)."""
        obj = await self._store.get(WORKFLOW, namespace, name)
        wf = checked_workflow(obj, f"Workflow {namespace}/{name}")
        resolved = resolve_params(wf, params)
        await self._steps.ensure_repo(name)
        now = time.time()
        status = RunStatus.fresh(wf.spec, now)
        run = await self._store.create(
            {
                "apiVersion": "edgeweave.io/v1",
                "kind": RUN,
                "metadata": {
                    "name": run_name or f"{name}-{uuid.uuid4().hex[:10]}",
                    "namespace": namespace,
                    "labels": {WORKFLOW_LABEL: name},
                },
                "spec": {
                    "workflow": name,
                    "params": resolved,
                    "trigger": trigger,
                    "generation": int(obj["metadata"].get("generation") or 0),
                },
                "status": status.as_json(),
            }
        )
        run_id = run["metadata"]["name"]
        self._done[(namespace, run_id)] = asyncio.Event()
        ref = RunRef(name, namespace, run_id, resolved)
        self._supervisor.start(partial(self._drive, wf, ref, status), name=f"run/{run_id}")
        await self._note_last_run(namespace, name, run_id, RUN_RUNNING)
        return run

    async def wait_run(self, namespace: str, run: str) -> JSONObject:
        """The run once it has ended (at once when it already has)."""
        done = self._done.get((namespace, run))
        if done is not None:
            await done.wait()
        return await self._store.get(RUN, namespace, run)

    # ---- driving a run -----------------------------------------------------------------------

    async def _drive(self, wf: Workflow, ref: RunRef, status: RunStatus) -> None:
        writer = _RunWriter(self._store, ref.namespace, ref.run, status)
        writing = asyncio.create_task(writer.follow(), name=f"run-writer/{ref.run}")
        try:
            await run_dag(
                wf.spec,
                status,
                partial(self._steps.run_try, ref),
                on_change=writer.changed.set,
            )
        except asyncio.CancelledError:
            status.state, status.message = RUN_INTERRUPTED, INTERRUPTED
            status.finished_at = time.time()
        except Exception:  # a bug: this run fails, the worker goes on
            log.exception("workflow run %s failed", ref.run)
            status.state, status.message = RUN_FAILED, "internal error (see the cloud's log)"
            status.finished_at = time.time()
        finally:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
            await writer.write()
            await self._note_last_run(ref.namespace, ref.workflow, ref.run, status.state)
            done = self._done.pop((ref.namespace, ref.run), None)
            if done is not None:
                done.set()

    async def _note_last_run(self, namespace: str, name: str, run: str, state: str) -> None:
        def change(status: dict[str, Any]) -> None:
            if status.get("lastRun") in (None, run) or state == RUN_RUNNING:
                status["lastRun"], status["lastRunState"] = run, state

        await update_status(self._store, WORKFLOW, namespace, name, change)

    # ---- after a restart ---------------------------------------------------------------------

    async def interrupt_stale_runs(self) -> list[str]:
        """Mark every run left ``running`` as ``interrupted``; their names."""
        marked = []
        for run in (await self._store.list(RUN)).items:
            status = RunStatus.from_json(run.get("status") or {})
            if status.state in RUN_DONE:
                continue
            meta = run["metadata"]

            def change(raw: dict[str, Any]) -> None:
                st = RunStatus.from_json(raw)
                st.state, st.message, st.finished_at = RUN_INTERRUPTED, INTERRUPTED, time.time()
                for step in st.steps.values():
                    if step.state in (RUNNING, RETRYING):
                        step.state, step.next_try_at = KILLED, None
                raw.clear()
                raw.update(st.as_json())

            await update_status(self._store, RUN, meta["namespace"], meta["name"], change)
            marked.append(meta["name"])
        return marked


class _RunWriter:
    """Writes a run's status whenever it changed, one write at a time, latest state wins."""

    def __init__(self, store: Store, namespace: str, name: str, status: RunStatus) -> None:
        self._store = store
        self._key = (namespace, name)
        self._status = status
        self.changed = asyncio.Event()

    async def follow(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self.write()

    async def write(self) -> None:
        snapshot = self._status.as_json()

        def change(raw: dict[str, Any]) -> None:
            raw.clear()
            raw.update(snapshot)

        try:
            await update_status(self._store, RUN, *self._key, change)
        except StoreError as e:
            log.warning("workflow run %s: cannot write its status: %s", self._key[1], e)


async def update_status(
    store: Store, kind: str, namespace: str, name: str, change: Any
) -> JSONObject | None:
    """Apply ``change(status dict)`` to an object's status, compare-and-set, retried when
    someone wrote in between; None when the object is gone."""
    for _ in range(CAS_ATTEMPTS):
        try:
            current = await store.get(kind, namespace, name)
        except NotFound:
            return None
        status = dict(current.get("status") or {})
        change(status)
        if status == current.get("status"):
            return current
        current["status"] = status
        try:
            return await store.update(current)
        except Conflict:
            continue
        except NotFound:
            return None
    log.warning("%s %s/%s: status kept changing; not written", kind, namespace, name)
    return None


async def start_scheduled(
    workflows: Workflows, namespace: str, name: str, tick: datetime
) -> str | None:
    """Start the run of one tick; None when another replica (or an earlier start) has it."""
    run_name = scheduled_run_name(name, tick)
    try:
        await workflows.start_run(namespace, name, {}, trigger="schedule", run_name=run_name)
    except AlreadyExists:
        return None
    except EdgeweaveError as e:
        log.warning("workflow %s/%s: scheduled run not started: %s", namespace, name, e.message)
        return None
    return run_name
