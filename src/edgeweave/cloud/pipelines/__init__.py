"""The cloud's pipeline worker (DESIGN.md §6): cloud-placed pipelines run in the cloud process.

What belongs here: the scheduler that runs a pipeline's jobs when its input branches get new
commits and chains downstream pipelines on new output commits (``scheduler``), the feed of
``Pipeline`` and ``Repo`` objects from the state store (``watcher``), and the service the API
calls for repos, files, commits, jobs, datums, logs and lineage (``service``). The engine —
repos, datums, jobs, the job store — is :mod:`edgeweave.pipelines`; this package only hosts it.

What does not: HTTP (``cloud.api.pfs``/``cloud.api.pps`` translate requests), anything from
``edgeweave.edge``, reading settings or opening files on its own — the composition root calls
:func:`open_pipelines` with the data directory and :class:`PipelineSettings`. Pipelines placed
on edge nodes only get a status here; cloud-placed ones may be handed to cloud workers
(``workers``).
"""

from edgeweave.cloud.pipelines.service import PipelineService, open_pipelines
from edgeweave.config.settings import PipelineSettings

__all__ = ["PipelineService", "PipelineSettings", "open_pipelines"]
