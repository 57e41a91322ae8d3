"""The industrial data workflow of `edgeweave demo` (examples/pipelines/industrial).

With the real commands, against a running fleet whose plant nodes (``site=plant``) are named
in ``machines`` (node → the machines whose sensors it reads): an empty cloud repo ``models``,
`pipeline create -f pipelines.yaml` (the Copier sending ``models`` to every plant node, the
batched inference on each node crossing the model with the node's readings, the Merger
bringing the results into the cloud), the example's ``readings.py`` writing each machine's
sensor log and `edge file put -r` of each node's logs — inference waits, as the node holds no
model yet. Then `file put` of ``model.json`` into ``models``: the Copier takes it to every
node, each node scores its readings in one job (the model loaded once), and the Merger
delivers the results. Last, the same model is pushed again: a new commit, and zero chunk
bytes moved to any node.

It returns what it saw (:class:`IndustrialRun`) for the end-to-end tests. Must not import
numpy (the inference is user code, run by the nodes as its own process).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeweave.cli.demo_building import (
    POLL_S,
    WAIT_S,
    branch_files,
    create_pipelines,
    put_dirs,
    run_script,
    succeeded_jobs,
)
from edgeweave.cli.fleet import Fleet, wait_until
from edgeweave.cli.narrate import say, show, table

if TYPE_CHECKING:
    from edgeweave.client.http import Client

MACHINES = {"edge-1": ["press-1", "press-2"], "edge-2": ["pump-1", "pump-2"], "edge-3": ["fan-1"]}
MODELS, COPIER, INFERENCE, MERGER = "models", "model-pull", "anomalies", "plant-anomalies"


@dataclass(frozen=True)
class IndustrialRun:
    heads: list[str]  # per push of the model: the models commit it made
    copies: list[dict[str, dict[str, Any]]]  # per push: node -> its copy as the cloud holds it
    results: dict[str, dict[str, Any]]  # node -> machine -> the merged inference result


def push_model(
    fleet: Fleet, client: Client, model: Path, nodes: list[str], title: str
) -> tuple[str, dict[str, Any]]:
    """Put ``model`` as a new commit of ``models``; wait until every node acked its copy."""
    show(fleet, title, "file", "put", f"{MODELS}@master:/model.json", "-f", str(model))
    head = str(client.inspect_commit(MODELS, "master")["id"])
    status: dict[str, Any] = {}

    def copied() -> bool:  # the Copier's per-node acks: status.nodes of its Pipeline
        obj = client.get("pipeline", COPIER)
        status.update((obj.get("status") or {}).get("nodes") or {})
        return all((status.get(n) or {}).get("commit") == head for n in nodes)

    wait_until(copied, WAIT_S, f"the model commit {head[:12]} on {', '.join(nodes)}", POLL_S)
    rows = [["NODE", "STATE", "COMMIT", "CHUNKS MOVED", "BYTES MOVED"]]
    for node in nodes:
        s = status[node]
        moved = f"{s.get('chunksMoved')} of {s.get('chunksTotal')}"
        rows.append([node, str(s.get("state")), head[:12], moved, str(s.get("bytesMoved"))])
    table(rows)
    return head, {n: status[n] for n in nodes}


def run_industrial(
    fleet: Fleet, example: Path, work: Path, machines: Mapping[str, list[str]] = MACHINES
) -> IndustrialRun:
    nodes = list(machines)
    say("industrial: a model copied to every plant node, inference there, results merged")
    show(fleet, "the cloud repo the model goes into", "repo", "create", MODELS)
    create_pipelines(fleet, example / "pipelines.yaml", nodes)
    say("each node's sensor logs go into its `readings` repo; without a model nothing runs yet")
    every = [m for names in machines.values() for m in names]
    run_script(fleet, example / "readings.py", str(work / "all"), *every)  # one start
    for node, names in machines.items():
        (work / node).mkdir(parents=True, exist_ok=True)
        for name in names:
            os.link(work / "all" / f"{name}.csv", work / node / f"{name}.csv")
    put_dirs(fleet, "readings", {node: work / node for node in nodes})
    with fleet.client() as client:
        to_nodes = "the model into the cloud: the Copier takes it to every plant node"
        first = push_model(fleet, client, example / "model.json", nodes, to_nodes)
        say("waiting for each node's inference results to be merged in the cloud")
        paths: dict[str, list[str]] = {}

        def merged() -> bool:
            succeeded_jobs(client, INFERENCE)
            paths.update({n: branch_files(client, MERGER, n) for n in nodes})
            return all(len(paths[n]) == len(machines[n]) for n in nodes)

        wait_until(merged, WAIT_S, "the inference results in the cloud", POLL_S)
        results = {
            node: {
                p.strip("/").removesuffix(".json"): json.loads(
                    b"".join(client.get_file(MERGER, node, p))
                )
                for p in found
            }
            for node, found in paths.items()
        }
        _print_results(results)
        again = "the same model pushed again: a new commit, no chunk moves"
        second = push_model(fleet, client, example / "model.json", nodes, again)
    return IndustrialRun([first[0], second[0]], [first[1], second[1]], results)


def _print_results(results: Mapping[str, Mapping[str, Any]]) -> None:
    say(f"the inference results, merged in the cloud ({MERGER}@NODE, one branch per node)")
    rows = [["NODE", "MACHINE", "MODEL", "READINGS", "ANOMALIES AT"]]
    for node, found in results.items():
        for machine, r in found.items():
            at = " ".join(a["time"] for a in r.get("anomalies") or []) or "-"
            rows.append([node, machine, str(r.get("model")), str(r.get("readings")), at])
    table(rows)
