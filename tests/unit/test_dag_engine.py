"""The DAG engine with a scripted step runner: order, retries and backoff, failure spread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from edgeweave.errors import PipelineError
from edgeweave.models.workflows import Step
from edgeweave.pipelines.dag import RunStatus, TryOutcome, run_dag
from edgeweave.pipelines.dagspec import parse_workflow_file

DIAMOND = """
workflow: {name: w}
steps:
  - {name: a, cmd: [x]}
  - {name: b, cmd: [x], depends_on: [a], retries: 3,
     retry_backoff: {initial: 2s, factor: 3, max: 10s}}
  - {name: c, cmd: [x], depends_on: [a]}
  - {name: d, cmd: [x], depends_on: [b, c]}
  - {name: e, cmd: [x], depends_on: [d]}
  - {name: lone, cmd: [x]}
"""


class Script:
    """Plays steps: ``fails[name]`` tries fail before one succeeds (never, when above the
    step's tries); records the order and what each try saw upstream."""

    def __init__(self, fails: Mapping[str, int] | None = None) -> None:
        self.fails = dict(fails or {})
        self.calls: list[tuple[str, int]] = []
        self.upstream: dict[str, dict[str, str]] = {}
        self.sleeps: list[float] = []
        self.now = 1000.0
        self.running: set[str] = set()
        self.most_at_once = 0

    async def try_step(self, step: Step, attempt: int, upstream: Mapping[str, str]) -> TryOutcome:
        self.calls.append((step.name, attempt))
        self.upstream[step.name] = dict(upstream)
        self.running.add(step.name)
        self.most_at_once = max(self.most_at_once, len(self.running))
        await asyncio.sleep(0)  # let siblings start: they must be able to overlap
        self.running.discard(step.name)
        if self.fails.get(step.name, 0) >= attempt:
            return TryOutcome(False, f"{step.name}-{attempt}", self.now, error="exit 1")
        return TryOutcome(True, f"{step.name}-{attempt}", self.now, f"commit-{step.name}")

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


async def play(script: Script) -> RunStatus:
    (wf,) = parse_workflow_file(DIAMOND)
    status = RunStatus.fresh(wf.spec, script.now)
    return await run_dag(wf.spec, status, script.try_step, sleep=script.sleep, clock=script.clock)


def order(script: Script, name: str) -> int:
    return [n for n, _ in script.calls].index(name)


async def test_steps_start_after_all_their_upstream_steps_and_read_their_outputs() -> None:
    script = Script()
    status = await play(script)
    assert status.state == "success"
    assert order(script, "a") < order(script, "b") < order(script, "d") < order(script, "e")
    assert order(script, "c") < order(script, "d")
    assert script.upstream["d"] == {"b": "commit-b", "c": "commit-c"}
    assert script.upstream["a"] == {}
    assert script.most_at_once >= 2  # a and lone, then b and c, run side by side
    assert status.steps["e"].output_commit == "commit-e" and status.steps["e"].jobs == ["e-1"]


async def test_a_failing_try_is_retried_after_a_growing_backoff() -> None:
    script = Script({"b": 2})
    status = await play(script)
    assert status.state == "success"
    assert [c for c in script.calls if c[0] == "b"] == [("b", 1), ("b", 2), ("b", 3)]
    assert script.sleeps == [2.0, 6.0]
    b = status.steps["b"]
    assert (b.state, b.tries, b.jobs, b.error) == ("success", 3, ["b-1", "b-2", "b-3"], "")


async def test_a_step_out_of_tries_fails_its_downstream_but_not_other_branches() -> None:
    script = Script({"b": 9})
    seen: list[str] = []
    (wf,) = parse_workflow_file(DIAMOND)
    status = RunStatus.fresh(wf.spec, 0.0)

    def on_change() -> None:
        seen.append(status.steps["b"].state)

    await run_dag(
        wf.spec,
        status,
        script.try_step,
        on_change=on_change,
        sleep=script.sleep,
        clock=script.clock,
    )
    assert status.state == "failed" and "b" in status.message
    assert status.steps["b"].state == "failed" and status.steps["b"].tries == 4
    assert script.sleeps == [2.0, 6.0, 10.0]  # capped at max
    assert "retrying" in seen
    for name in ("d", "e"):
        assert status.steps[name].state == "upstream_failed"
        assert "'b'" in status.steps[name].error
    assert status.steps["c"].state == "success" and status.steps["lone"].state == "success"
    assert {n for n, _ in script.calls} == {"a", "b", "c", "lone"}


async def test_an_error_starting_a_step_counts_as_a_failed_try() -> None:
    script = Script()

    async def broken(step: Step, attempt: int, upstream: Mapping[str, str]) -> TryOutcome:
        if step.name == "c":
            raise PipelineError("upstream output gone")
        return await script.try_step(step, attempt, upstream)

    (wf,) = parse_workflow_file(DIAMOND)
    status = await run_dag(wf.spec, RunStatus.fresh(wf.spec, 0.0), broken, sleep=script.sleep)
    assert status.steps["c"].state == "failed"
    assert status.steps["c"].error == "upstream output gone"
    assert status.steps["d"].state == "upstream_failed"


async def test_a_cancelled_run_marks_its_running_steps_killed() -> None:
    (wf,) = parse_workflow_file(DIAMOND)
    started = asyncio.Event()

    async def hang(step: Step, attempt: int, upstream: Mapping[str, str]) -> TryOutcome:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    status = RunStatus.fresh(wf.spec, 0.0)
    task = asyncio.create_task(run_dag(wf.spec, status, hang))
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert status.steps["a"].state == "killed" and status.steps["lone"].state == "killed"
    assert status.steps["b"].state == "pending"


def test_run_status_survives_a_json_round_trip() -> None:
    (wf,) = parse_workflow_file(DIAMOND)
    status = RunStatus.fresh(wf.spec, 5.0)
    status.steps["a"].jobs.append("j1")
    status.steps["a"].output_commit = "c1"
    assert RunStatus.from_json(status.as_json()).as_json() == status.as_json()
