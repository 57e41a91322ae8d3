"""One app instance on this node, driven by one named task towards its desired state.

The task adopts a process left by an earlier agent when ``run.json`` still names it and its
spec hash matches; otherwise it fetches artifacts, writes the workspace, installs once per
spec hash and starts ``run``. It then supervises: exit → restart per policy with backoff,
failing health → stop and restart per policy, a new spec hash → stop and start over. Every
status change goes to ``on_status``.

A unit never touches another app's directory and never decides which apps exist (that is
:mod:`.supervisor`). Closing a unit leaves its process running unless asked to stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeweave.aio.backoff import Backoff
from edgeweave.config.edge import RuntimeSettings
from edgeweave.edge.runtime import process, workspace
from edgeweave.edge.runtime.artifacts import ArtifactCache, ArtifactMismatch
from edgeweave.edge.runtime.cgroups import Cgroups
from edgeweave.edge.runtime.desired import DesiredApp
from edgeweave.edge.runtime.install import run_install
from edgeweave.edge.runtime.policy import should_restart
from edgeweave.edge.runtime.probes import probe_loop
from edgeweave.edge.runtime.status import AppStatus
from edgeweave.errors import EdgeweaveError

log = logging.getLogger(__name__)
FOREVER = float("inf")


@dataclass(frozen=True)
class UnitContext:
    data_dir: Path
    node_name: str
    cache: ArtifactCache
    settings: RuntimeSettings
    cgroups: Cgroups
    clock: Callable[[], float]
    wall_clock: Callable[[], float]
    on_status: Callable[[AppStatus], None]
    extra_env: Callable[[str], Mapping[str, str]] = lambda _namespace: {}
    """More variables for an app in this namespace (the mesh's EDGEWEAVE_DNS, _SERVICE_*)."""


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel every task first, then wait for all: a cancellation of the caller while waiting
    cannot leave one of them running."""
    live = [t for t in tasks if t is not None and not t.done()]
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live)


class AppUnit:
    def __init__(self, ctx: UnitContext, desired: DesiredApp) -> None:
        self._ctx = ctx
        self._desired = desired
        self.layout = workspace.AppLayout.under(ctx.data_dir, desired.namespace, desired.name)
        self.status = AppStatus(
            desired.namespace, desired.name, desired.generation, spec_hash=desired.spec_hash
        )
        self._changed = asyncio.Event()
        self._health_failed = asyncio.Event()
        self._health_reason = ""
        self._watched: process.Watched | None = None
        self._running_hash = ""
        self._backoff = Backoff(
            ctx.settings.restart_backoff_base_s, ctx.settings.restart_backoff_cap_s, jitter=False
        )
        self._noted: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def group(self) -> str:
        return f"{self._desired.namespace}_{self._desired.name}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name=f"runtime.app:{self.group}")

    def update(self, desired: DesiredApp) -> None:
        """A new desired state; only a different spec hash disturbs the process."""
        changed = desired.spec_hash != self._desired.spec_hash
        self._desired = desired
        if changed:
            self._changed.set()
        else:
            self._set(generation=desired.generation)

    async def aclose(self, *, stop: bool) -> None:
        await cancel_and_wait(self._task)
        watched, self._watched = self._watched, None
        if watched is None:
            return
        if stop:
            await process.stop_group(watched, self._ctx.settings.stop_grace_s)
            self.layout.run_file.unlink(missing_ok=True)
            self._ctx.cgroups.remove(self.group)
        watched.close()

    def _set(self, **changes: Any) -> None:
        new = self.status.replace(**changes)
        if new != self.status:
            self.status = new
            try:
                self._ctx.on_status(new)
            except Exception:
                log.exception("status report for %s failed", self.group)

    async def _wait_change(self, timeout_s: float = FOREVER) -> bool:
        """True when the desired spec changed within ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if timeout_s == FOREVER else timeout_s):
                await self._changed.wait()
        return self._changed.is_set()

    async def _main(self) -> None:
        self._adopt()
        while True:
            desired = self._desired
            self._changed.clear()
            self._set(generation=desired.generation, spec_hash=desired.spec_hash)
            try:
                if self._watched is not None and self._running_hash != desired.spec_hash:
                    self._set(message="spec changed: stopping the old process")
                    await self._stop_current()
                if self._watched is None:
                    retry_s = await self._prepare(desired)
                    if retry_s is not None:
                        await self._wait_change(retry_s)
                        continue
                await self._supervise(desired)
            except Exception as e:
                log.exception("runtime unit %s failed", self.group)
                self._set(phase="Failed", ready=False, message=f"internal error: {e!r}")
                await self._wait_change(self._backoff.next_delay())

    def _adopt(self) -> None:
        record = process.read_run_record(self.layout.run_file)
        if record is None:
            return
        watched = None
        if process.is_running(record):
            with contextlib.suppress(ProcessLookupError):
                watched = process.Watched(record.pid)
        if watched is None:
            self.layout.run_file.unlink(missing_ok=True)  # stale: the process is gone
            return
        self._watched, self._running_hash = watched, record.spec_hash
        self._set(pid=record.pid, restarts=record.restarts, started_at=record.started_at)
        if record.spec_hash == self._desired.spec_hash:
            ready = self._desired.spec is None or self._desired.spec.healthCheck is None
            self._set(phase="Running", ready=ready, message="adopted the running process")

    async def _stop_current(self) -> None:
        watched, self._watched = self._watched, None
        if watched is None:
            return
        try:
            await process.stop_group(watched, self._ctx.settings.stop_grace_s)
        finally:
            watched.close()
            self.layout.run_file.unlink(missing_ok=True)
            self._ctx.cgroups.remove(self.group)
        self._set(pid=None, ready=False, started_at=None)

    async def _prepare(self, d: DesiredApp) -> float | None:
        """Workspace, artifacts and install; None when ready to run, else a retry delay."""
        if d.spec is None or d.problem:
            self._set(phase="Failed" if d.spec is None else "Pending", message=d.problem)
            return FOREVER
        self._set(phase="Pending", ready=False, pid=None, message="preparing")
        try:
            await asyncio.to_thread(workspace.prepare, self.layout, d)
            artifacts = [{"name": a.name, "digest": a.digest} for a in d.spec.artifacts]
            await self._ctx.cache.materialize(self.layout.root, artifacts)
        except ArtifactMismatch as e:
            self._set(phase="Failed", message=e.message)
            return FOREVER
        except ValueError as e:
            self._set(phase="Failed", message=str(e))
            return FOREVER
        except (OSError, EdgeweaveError) as e:
            delay = self._backoff.next_delay()
            self._set(message=f"cannot prepare artifacts ({e}); retrying in {delay:.3g} s")
            return delay
        install = d.spec.lifecycle.install
        if install and not self.layout.installed_marker(d.spec_hash).exists():
            self._set(phase="Installing", message="running lifecycle.install")
            env = self._environment(d)
            problem = await run_install(
                install,
                self.layout,
                env,
                timeout_s=self._ctx.settings.install_timeout_s,
                tail_lines_count=self._ctx.settings.install_log_tail_lines,
            )
            if problem:
                self._set(phase="Failed", message=problem)
                return FOREVER
            self.layout.mark_installed(d.spec_hash)
        self._backoff.reset()  # a new spec starts its restart delays afresh
        return None

    def _environment(self, d: DesiredApp) -> dict[str, str]:
        return workspace.environment(
            self.layout, d, self._ctx.node_name, self._ctx.extra_env(d.namespace)
        )

    def _spawn(self, d: DesiredApp) -> str:
        """Start ``run`` and apply its limits; "" or why it could not start."""
        assert d.spec is not None
        env = self._environment(d)
        try:
            self.layout.logs.mkdir(parents=True, exist_ok=True)
            pid = process.spawn(
                d.spec.lifecycle.run, cwd=self.layout.root, env=env, log_path=self.layout.app_log
            )
        except OSError as e:
            return f"could not start {d.spec.lifecycle.run[0]!r}: {e.strerror or e}"
        self._watched, self._running_hash = process.Watched(pid), d.spec_hash
        limits = d.spec.resources.limits if d.spec.resources else None
        notes = process.apply_rlimits(pid, limits)
        if limits is not None:
            mem, cpu = limits.memory_limit_bytes(), limits.cpu_millis()
            notes.append(self._ctx.cgroups.place(pid, self.group, mem, cpu))
        started_at = self._ctx.wall_clock()
        record = process.RunRecord(
            pid, process.read_start_time(pid) or -1, d.spec_hash, started_at, self.status.restarts
        )
        process.write_run_record(self.layout.run_file, record)
        new_notes = [n for n in notes if n and n not in self._noted]
        self._noted.update(new_notes)
        for note in new_notes:
            log.warning("%s: %s", self.group, note)
        ready = d.spec.healthCheck is None
        self._set(
            phase="Running",
            pid=pid,
            ready=ready,
            started_at=started_at,
            message="; ".join(new_notes),
        )
        return ""

    def _on_health(self, ok: bool, reason: str) -> None:
        if ok:
            self._set(ready=True)
        else:
            self._health_reason = reason
            self._set(ready=False, message=reason)
            self._health_failed.set()

    async def _supervise(self, d: DesiredApp) -> None:
        """Run (and restart) the process until the spec changes or it is not restarted."""
        assert d.spec is not None
        code: int | None
        while True:
            if self._watched is None:
                problem = self._spawn(d)
                if problem:
                    if await self._after_exit(d, 127, problem, 0.0):
                        return
                    continue
            watched = self._watched
            assert watched is not None
            started = self._ctx.clock()
            self._health_failed.clear()
            probes = None
            if d.spec.healthCheck is not None:
                env = self._environment(d)
                probes = asyncio.create_task(
                    probe_loop(
                        d.spec.healthCheck, d.spec.ports, self.layout.root, env, self._on_health
                    ),
                    name=f"runtime.probe:{self.group}",
                )
            change = asyncio.create_task(self._changed.wait(), name=f"runtime.change:{self.group}")
            health = asyncio.create_task(
                self._health_failed.wait(), name=f"runtime.health:{self.group}"
            )
            waiters: list[asyncio.Future[Any]] = [watched.exit, change, health]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait(probes, change, health)
            if self._changed.is_set() and not watched.exit.done():
                return  # the main loop stops it and starts the new spec
            if watched.exit.done():
                code = watched.exit.result()
                why = process.describe_exit(code)
            else:
                code, why = 1, self._health_reason
                await process.stop_group(watched, self._ctx.settings.stop_grace_s)
            process.signal_group(watched.pid, signal.SIGKILL)
            watched.close()
            self._watched = None
            self.layout.run_file.unlink(missing_ok=True)
            if await self._after_exit(d, code, why, self._ctx.clock() - started):
                return

    async def _after_exit(self, d: DesiredApp, code: int | None, why: str, ran_s: float) -> bool:
        """Wait out the backoff before a restart; True when the supervise loop should end."""
        assert d.spec is not None
        phase = "Completed" if code == 0 else "Failed"
        if not should_restart(d.spec.restartPolicy, code):
            self._set(
                phase=phase,
                pid=None,
                ready=False,
                message=f"{why}; not restarted (restartPolicy {d.spec.restartPolicy})",
            )
            await self._wait_change()
            return True
        if ran_s >= self._ctx.settings.restart_backoff_reset_after_s:
            self._backoff.reset()
        delay = self._backoff.next_delay()
        self._set(phase=phase, pid=None, ready=False, message=f"{why}; restarting in {delay:.3g} s")
        if await self._wait_change(delay):
            return True
        self._set(restarts=self.status.restarts + 1)
        return False
