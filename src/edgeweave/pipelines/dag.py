"""Running one workflow run: steps start the moment their upstream steps succeed.

:func:`run_dag` takes the workflow's spec, the run's :class:`RunStatus` (every step
``pending``, or — for steps already done — ``success`` with their output commit) and a
:data:`TryStep` that runs one try of one step (``dagstep.StepRunner`` in the hosts, a fake in
tests). It starts every step whose dependencies all succeeded, and whenever a step succeeds
starts, in the same turn of the event loop, each dependent that is now ready — no polling,
so the time from one step's end to the next one's start is the cost of a task switch.

A try that fails is tried again after ``retry_backoff`` (``initial * factor**(k-1)``, at most
``max``) until ``retries + 1`` tries were made; meanwhile the step is ``retrying`` with
``nextTryAt``. A step that failed its last try is ``failed``; every step downstream of it that
has not run becomes ``upstream_failed`` and never runs, while independent branches go on.
The run ends when nothing runs: ``success`` when every step succeeded, else ``failed``.

``on_change`` is called (synchronously, cheaply) after every change of the status, so the
host can persist it without the steps waiting on the store. ``sleep`` and ``clock`` are
injected so retry timing is tested without waiting.

Must not know where it runs, read the store, or start processes itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeweave.errors import EdgeweaveError
from edgeweave.models.workflows import Step, WorkflowSpec

PENDING, RUNNING, RETRYING = "pending", "running", "retrying"
SUCCESS, FAILED, UPSTREAM_FAILED, KILLED = "success", "failed", "upstream_failed", "killed"
STEP_DONE = frozenset({SUCCESS, FAILED, UPSTREAM_FAILED, KILLED})
RUN_RUNNING, RUN_SUCCESS, RUN_FAILED, RUN_INTERRUPTED = (
    "running",
    "success",
    "failed",
    "interrupted",
)
RUN_DONE = frozenset({RUN_SUCCESS, RUN_FAILED, RUN_INTERRUPTED})


@dataclass
class StepStatus:
    state: str = PENDING
    tries: int = 0
    started_at: float | None = None  # Unix seconds, the first try's start
    finished_at: float | None = None
    jobs: list[str] = field(default_factory=list)  # one job per try
    output_commit: str | None = None
    error: str = ""
    next_try_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "tries": self.tries, "jobs": list(self.jobs)}
        for key, value in (
            ("startedAt", self.started_at),
            ("finishedAt", self.finished_at),
            ("outputCommit", self.output_commit),
            ("nextTryAt", self.next_try_at),
        ):
            if value is not None:
                out[key] = value
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StepStatus:
        return cls(
            state=str(raw.get("state") or PENDING),
            tries=int(raw.get("tries") or 0),
            started_at=raw.get("startedAt"),
            finished_at=raw.get("finishedAt"),
            jobs=[str(j) for j in raw.get("jobs") or []],
            output_commit=raw.get("outputCommit"),
            error=str(raw.get("error") or ""),
            next_try_at=raw.get("nextTryAt"),
        )


@dataclass
class RunStatus:
    steps: dict[str, StepStatus]
    state: str = RUN_RUNNING
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""

    @classmethod
    def fresh(cls, spec: WorkflowSpec, now: float) -> RunStatus:
        return cls({s.name: StepStatus() for s in spec.steps}, started_at=now)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "startedAt": self.started_at,
            "steps": {name: s.as_json() for name, s in self.steps.items()},
        }
        if self.finished_at is not None:
            out["finishedAt"] = self.finished_at
        if self.message:
            out["message"] = self.message
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunStatus:
        steps = raw.get("steps") or {}
        return cls(
            {str(k): StepStatus.from_json(v) for k, v in steps.items()},
            state=str(raw.get("state") or RUN_RUNNING),
            started_at=raw.get("startedAt"),
            finished_at=raw.get("finishedAt"),
            message=str(raw.get("message") or ""),
        )


@dataclass(frozen=True)
class TryOutcome:
    """How one try of a step ended (a job of the job store)."""

    ok: bool
    job_id: str
    finished_at: float
    output_commit: str | None = None
    error: str = ""


# (the step, its try number from 1, upstream step → its output commit) → the outcome
TryStep = Callable[[Step, int, Mapping[str, str]], Awaitable[TryOutcome]]


async def run_dag(
    spec: WorkflowSpec,
    status: RunStatus,
    try_step: TryStep,
    *,
    on_change: Callable[[], None] = lambda: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> RunStatus:
    """Run every step not yet done (see the module docstring); returns ``status``."""
    steps = {s.name: s for s in spec.steps}
    for name in steps:
        status.steps.setdefault(name, StepStatus())
    dependents: dict[str, list[str]] = {name: [] for name in steps}
    for s in spec.steps:
        for dep in s.depends_on:
            dependents[dep].append(s.name)

    def ready(name: str) -> bool:
        return status.steps[name].state == PENDING and all(
            status.steps[d].state == SUCCESS for d in steps[name].depends_on
        )

    def block_downstream(name: str) -> None:
        todo = list(dependents[name])
        while todo:
            dep = todo.pop()
            other = status.steps[dep]
            if other.state == PENDING:
                other.state, other.error = UPSTREAM_FAILED, f"upstream step {name!r} failed"
                todo.extend(dependents[dep])

    async def one(name: str, tasks: asyncio.TaskGroup) -> None:
        step, st = steps[name], status.steps[name]
        st.started_at = clock()
        while True:
            st.tries += 1
            st.state, st.next_try_at = RUNNING, None
            on_change()
            upstream = {d: status.steps[d].output_commit or "" for d in step.depends_on}
            try:
                outcome = await try_step(step, st.tries, upstream)
            except EdgeweaveError as e:  # the step could not even start: a failed try
                outcome = TryOutcome(False, "", clock(), error=e.message)
            if outcome.job_id:
                st.jobs.append(outcome.job_id)
            if outcome.ok:
                st.state, st.error = SUCCESS, ""
                st.output_commit, st.finished_at = outcome.output_commit, outcome.finished_at
                for dep in dependents[name]:  # at once: the hop costs a task switch
                    if ready(dep):
                        start(dep, tasks)
                on_change()
                return
            st.error = outcome.error
            if st.tries >= step.tries:
                st.state, st.finished_at = FAILED, outcome.finished_at
                block_downstream(name)
                on_change()
                return
            delay = step.retry_backoff.delay_s(st.tries)
            st.state, st.next_try_at = RETRYING, clock() + delay
            on_change()
            await sleep(delay)

    def start(name: str, tasks: asyncio.TaskGroup) -> None:
        status.steps[name].state = RUNNING
        tasks.create_task(one(name, tasks), name=f"step/{name}")

    status.state = RUN_RUNNING
    try:
        async with asyncio.TaskGroup() as tasks:
            for name in steps:
                if ready(name):
                    start(name, tasks)
    except BaseException:
        for st in status.steps.values():
            if st.state in (RUNNING, RETRYING):
                st.state, st.finished_at, st.next_try_at = KILLED, clock(), None
        raise
    for st in status.steps.values():  # left pending: an upstream ended before this run
        if st.state == PENDING:
            st.state = UPSTREAM_FAILED
            st.error = st.error or "an upstream step did not succeed"
    done_ok = all(st.state == SUCCESS for st in status.steps.values())
    status.state = RUN_SUCCESS if done_ok else RUN_FAILED
    if not done_ok:
        bad = [n for n, st in status.steps.items() if st.state == FAILED]
        status.message = f"step(s) failed: {', '.join(bad)}" if bad else "not every step ran"
    status.finished_at = clock()
    on_change()
    return status
