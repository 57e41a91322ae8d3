"""Task DAGs with the real commands: a real ``edgeweave cloud serve`` and the CLI. A diamond
whose middle step fails once and is retried, a step that always fails (its downstream step
is ``upstream_failed``, an independent branch still runs), parameters, the steps' jobs in
``job list``/``job inspect``/``logs --job``; the example workflow; errors naming the field
or the parameter; a stop marking a running run interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeweave.cli.fleet import Fleet, FleetError, wait_until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parents[2] / "examples" / "workflows" / "wordstats.yaml"

DIAMOND = """
workflow: {{name: diamond}}
params: {{greeting: hello, name: null}}
steps:
  - name: start
    cmd: [sh, -c, 'printf "%s %s\\n" "$PARAM_GREETING" "$1" > /pfs/out/msg.txt', sh,
          "{{{{params.name}}}}"]
  - name: flaky
    depends_on: [start]
    retries: 2
    retry_backoff: {{initial: 200ms, factor: 2, max: 1s}}
    cmd: [sh, -c, 'test -e {marker} || {{ touch {marker}; echo first try fails; exit 1; }};
          tr a-z A-Z < /pfs/start/msg.txt > /pfs/out/loud.txt']
  - name: steady
    depends_on: [start]
    cmd: [sh, -c, 'wc -c < /pfs/start/msg.txt > /pfs/out/size.txt']
  - name: join
    depends_on: [flaky, steady]
    cmd: [sh, -c, 'cat /pfs/flaky/loud.txt /pfs/steady/size.txt > /pfs/out/all.txt']
  - name: broken
    cmd: [sh, -c, 'echo no luck; exit 3']
  - name: after-broken
    depends_on: [broken]
    cmd: ["true"]
"""


def cli_error(fleet: Fleet, *args: str) -> str:
    with pytest.raises(FleetError) as info:
        fleet.cli(*args)
    return str(info.value)


def test_a_diamond_with_retries_failures_and_params_through_the_cli(
    fleet: Fleet, tmp_path: Path
) -> None:
    spec = tmp_path / "diamond.yaml"
    spec.write_text(DIAMOND.format(marker=tmp_path / "tried"))
    assert fleet.cli("workflow", "create", "-f", str(spec)).strip() == "workflow/diamond created"
    assert "needs parameter 'name'" in cli_error(fleet, "workflow", "run", "diamond")
    out = fleet.cli("workflow", "run", "diamond", "-p", "name=edge", "--wait", check=False)
    run = out.splitlines()[0].removeprefix("workflowrun/").removesuffix(" started")
    assert "State:     failed" in out
    obj = json.loads(fleet.cli("get", "workflowrun", run, "-o", "json"))
    steps = obj["status"]["steps"]
    assert {n: s["state"] for n, s in steps.items()} == {
        "start": "success",
        "flaky": "success",
        "steady": "success",
        "join": "success",
        "broken": "failed",
        "after-broken": "upstream_failed",
    }
    assert steps["flaky"]["tries"] == 2 and len(steps["flaky"]["jobs"]) == 2
    assert steps["broken"]["tries"] == 1 and "exited with code 3" in steps["broken"]["error"]
    assert fleet.cli("file", "get", f"diamond@{steps['join']['outputCommit']}:/all.txt") == (
        "HELLO EDGE\n11\n"
    )
    assert fleet.cli("file", "get", "diamond@join:/all.txt") == "HELLO EDGE\n11\n"

    jobs = fleet.cli("job", "list")
    assert "diamond.flaky try 1/3" in jobs and "diamond.flaky try 2/3" in jobs
    assert "diamond.broken try 1/1" in jobs and "after-broken" not in jobs
    first_try = steps["flaky"]["jobs"][0]
    inspect = fleet.cli("job", "inspect", first_try)
    assert f"Run:         {run}" in inspect and "Step:        flaky, try 1/3" in inspect
    assert "State:       failure" in inspect
    assert "first try fails" in fleet.cli("logs", "--job", first_try[:10])
    assert "no luck" in fleet.cli("logs", "--job", steps["broken"]["jobs"][0])

    shown = fleet.cli("workflow", "inspect", "diamond", "--run", run)
    assert "upstream_failed" in shown and "Params:    greeting=hello, name=edge" in shown
    listed = fleet.cli("workflow", "list")
    assert "diamond" in listed and run in listed and "failed" in listed

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "workflow: {name: bad}\nsteps:\n  - {name: a, cmd: [x], depends_on: [b]}\n"
        "  - {name: b, cmd: [x], depends_on: [a]}\n"
    )
    err = cli_error(fleet, "workflow", "create", "-f", str(bad))
    assert "steps[0].depends_on: cycle a -> b -> a" in err
    err = cli_error(fleet, "workflow", "run", "diamond", "-p", "name=x", "-p", "naem=y")
    assert "has no parameter 'naem'" in err


def test_the_example_runs_and_a_run_cut_by_a_stop_is_marked_interrupted(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.cli("workflow", "create", "-f", str(EXAMPLE))
    out = fleet.cli("workflow", "run", "wordstats", "-p", "text=b a b ccc b a", "--wait")
    assert "State:     success" in out
    assert fleet.cli("file", "get", "wordstats@report:/report.txt") == "b 3\na 2\nlongest: ccc\n"

    spec = tmp_path / "slow.yaml"
    spec.write_text("workflow: {name: slow}\nsteps:\n  - {name: wait, cmd: [sleep, '60']}\n")
    fleet.cli("workflow", "create", "-f", str(spec))
    run = fleet.cli("workflow", "run", "slow").split()[0].removeprefix("workflowrun/")

    def step_running() -> bool:
        obj = json.loads(fleet.cli("get", "workflowrun", run, "-o", "json"))
        return bool(obj["status"]["steps"]["wait"]["state"] == "running")

    wait_until(step_running, 30, "the step to run")
    assert fleet.cloud is not None
    fleet.cloud.stop()  # SIGTERM: the step's process is killed, the run marked
    fleet.start_cloud()
    obj = json.loads(fleet.cli("get", "workflowrun", run, "-o", "json"))
    assert obj["status"]["state"] == "interrupted"
    assert obj["status"]["steps"]["wait"]["state"] == "killed"
