"""Wiring of task DAGs into the cloud's pipeline worker: :func:`open_workflows`.

The steps run on the worker's repos and job store (so their jobs are listed, inspected and
logged like any pipeline's) with their own :class:`DatumRunner` on the same work directory.
On start, runs a stopped cloud left running are marked ``interrupted``; then the schedule
task starts. Leaving cancels every run (marked ``interrupted``) and the schedule task.

Must not know HTTP.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from edgeweave.aio.tasks import open_supervisor
from edgeweave.cloud.pipelines.service import PipelineService
from edgeweave.cloud.pipelines.wfschedule import WorkflowSchedules
from edgeweave.cloud.pipelines.workflows import Workflows
from edgeweave.cloud.store.base import Store
from edgeweave.pipelines.dagstep import StepRunner
from edgeweave.pipelines.runner import DatumRunner

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_workflows(
    store: Store, pipelines: PipelineService, root: Path
) -> AsyncIterator[Workflows]:
    """Workflow runs and schedules on ``pipelines``' repos and job store (``root`` is the
    pipeline worker's data directory)."""
    datums = DatumRunner(root / "work", pipelines.repos, namespace=pipelines.namespace)
    steps = StepRunner(pipelines.repos, pipelines.jobs, datums)
    async with open_supervisor("workflows") as supervisor:
        workflows = Workflows(store, steps, supervisor)
        stale = await workflows.interrupt_stale_runs()
        if stale:
            log.warning("workflow runs interrupted by the last stop: %s", ", ".join(stale))
        schedules = WorkflowSchedules(store, workflows)
        supervisor.start(schedules.run, name="schedules", restart=True)
        yield workflows
