"""The runtime: the set of app units on this node, reconciled against the desired set.

:meth:`Runtime.apply` takes every App the node should run (plus the ConfigMaps and Secrets
they reference), starts new ones, hands changed ones their new spec (the unit restarts only
on a new spec hash), stops removed ones and deletes their directories. The first ``apply``
also stops processes and removes directories an earlier agent left for apps that are no
longer desired. One named task rotates logs; each unit has its own named task.

``aclose(stop_apps=False)`` leaves the processes running so the next agent adopts them.
This module must not talk to the cloud or the agent's store: it receives objects and
reports :class:`AppStatus` through a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeweave.config.edge import RuntimeSettings
from edgeweave.edge.runtime import logs, process
from edgeweave.edge.runtime.artifacts import ArtifactCache
from edgeweave.edge.runtime.cgroups import Cgroups
from edgeweave.edge.runtime.desired import AppKey, resolve
from edgeweave.edge.runtime.status import AppStatus
from edgeweave.edge.runtime.unit import AppUnit, UnitContext, cancel_and_wait
from edgeweave.errors import EdgeweaveError

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        data_dir: Path,
        node_name: str,
        cache: ArtifactCache,
        report: Callable[[AppStatus], None],
        *,
        settings: RuntimeSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        cgroups: Cgroups | None = None,
        extra_env: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        self.settings = settings or RuntimeSettings()
        self._ctx = UnitContext(
            data_dir=data_dir,
            node_name=node_name,
            cache=cache,
            settings=self.settings,
            cgroups=cgroups or Cgroups(self.settings.cgroup_root, self.settings.cgroup_slice),
            clock=clock,
            wall_clock=wall_clock,
            on_status=report,
            extra_env=extra_env or (lambda _namespace: {}),
        )
        self._units: dict[AppKey, AppUnit] = {}
        self._lock = asyncio.Lock()
        self._swept = False
        self._closed = False
        self._log_task: asyncio.Task[None] | None = None

    @property
    def apps_dir(self) -> Path:
        return self._ctx.data_dir / "apps"

    def status(self) -> list[AppStatus]:
        return [unit.status for _, unit in sorted(self._units.items())]

    async def apply(
        self,
        apps: Sequence[Any],
        configmaps: Sequence[Any] = (),
        secrets: Sequence[Any] = (),
    ) -> None:
        """Make the running set match ``apps`` (App models or plain object dicts)."""
        async with self._lock:
            if self._closed:
                raise EdgeweaveError("the runtime is closed; create a new one")
            desired = resolve(apps, configmaps, secrets)
            if not self._swept:
                self._swept = True
                await self._sweep_leftovers(set(desired))
            removed = [self._units.pop(k) for k in list(self._units) if k not in desired]
            await asyncio.gather(*(self._remove(unit) for unit in removed))
            for key, want in desired.items():
                unit = self._units.get(key)
                if unit is not None:
                    unit.update(want)
                else:
                    unit = self._units[key] = AppUnit(self._ctx, want)
                    unit.start()
            if self._log_task is None:
                self._log_task = asyncio.create_task(self._rotate_logs(), name="runtime.logs")

    async def aclose(self, stop_apps: bool = False) -> None:
        """Stop supervising; stop the processes too when ``stop_apps``."""
        async with self._lock:
            self._closed = True
            await cancel_and_wait(self._log_task)
            units, self._units = list(self._units.values()), {}
            await asyncio.gather(*(unit.aclose(stop=stop_apps) for unit in units))

    async def _remove(self, unit: AppUnit) -> None:
        await unit.aclose(stop=True)
        await asyncio.to_thread(shutil.rmtree, unit.layout.root, True)
        with contextlib.suppress(OSError):
            unit.layout.root.parent.rmdir()  # the namespace directory, when now empty

    async def _sweep_leftovers(self, desired: set[AppKey]) -> None:
        """Stop and delete what an earlier agent left for apps no longer desired."""
        if not self.apps_dir.is_dir():
            return
        for ns_dir in sorted(p for p in self.apps_dir.iterdir() if p.is_dir()):
            for app_dir in sorted(p for p in ns_dir.iterdir() if p.is_dir()):
                if (ns_dir.name, app_dir.name) in desired:
                    continue
                record = process.read_run_record(app_dir / "run.json")
                watched = None
                if record is not None and process.is_running(record):
                    with contextlib.suppress(ProcessLookupError):  # it ended just now
                        watched = process.Watched(record.pid)
                if watched is not None:
                    log.info("stopping %s left by an earlier agent", app_dir)
                    try:
                        await process.stop_group(watched, self.settings.stop_grace_s)
                    finally:
                        watched.close()
                    self._ctx.cgroups.remove(f"{ns_dir.name}_{app_dir.name}")
                await asyncio.to_thread(shutil.rmtree, app_dir, True)

    async def _rotate_logs(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.log_check_interval_s)
            for unit in list(self._units.values()):
                try:
                    await asyncio.to_thread(
                        logs.rotate_if_needed, unit.layout.app_log, s.max_log_bytes, s.log_keep
                    )
                except OSError as e:
                    log.warning("log rotation of %s failed: %s", unit.layout.app_log, e)
