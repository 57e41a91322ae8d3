"""Cloud workers without sockets or a store: the rendezvous choice, the inputs annotation, the
hub placing a handed-over Pipeline on its worker and signing only that worker's transfers,
and the `label` command's arguments."""

from __future__ import annotations

from typing import Any

import pytest

from edgeweave.cli.context import UsageError
from edgeweave.cli.label import parse_changes
from edgeweave.cloud.hub.index import DesiredIndex
from edgeweave.cloud.hub.urls import answer_url_request
from edgeweave.pipelines.cloudworkers import choose_worker, decode_inputs, encode_inputs
from edgeweave.protocol import messages as m
from edgeweave.protocol.refs import ResourceRef

PIPELINES = [f"p{i}" for i in range(400)]
C1, C2 = "1" * 32, "2" * 32


def assignment(workers: list[str]) -> dict[str, str | None]:
    return {p: choose_worker(p, workers) for p in PIPELINES}


def test_no_worker_means_the_builtin_worker_and_the_choice_ignores_order() -> None:
    assert choose_worker("p", []) is None
    assert assignment(["a", "b", "c"]) == assignment(["c", "a", "b"])
    spread = assignment(["a", "b", "c"])
    for worker in "abc":  # rendezvous hashing spreads evenly enough
        assert 80 < sum(1 for w in spread.values() if w == worker) < 190


def test_a_joining_worker_takes_only_what_it_wins_and_a_leaving_one_gives_only_its_own() -> None:
    before = assignment(["a", "b", "c"])
    after = assignment(["a", "b", "c", "d"])
    moved = [p for p in PIPELINES if before[p] != after[p]]
    assert all(after[p] == "d" for p in moved)  # nothing moves between the old workers
    assert 50 < len(moved) < 150  # about a quarter

    fewer = assignment(["a", "c"])
    changed = [p for p in PIPELINES if before[p] != fewer[p]]
    assert changed == [p for p in PIPELINES if before[p] == "b"]


def test_the_inputs_annotation_round_trips_and_ignores_malformed_entries() -> None:
    text = encode_inputs({("docs", "master"): C1, ("code", "dev"): C2, ("empty", "master"): ""})
    assert text == f'{{"code@dev":"{C2}","docs@master":"{C1}"}}'  # canonical: sorted, compact
    assert decode_inputs(text) == {"code@dev": C2, "docs@master": C1}
    assert decode_inputs(None) == {} and decode_inputs("{") == {} and decode_inputs("[1]") == {}
    assert decode_inputs('{"a@m": "nothex", "nobranch": "' + C1 + '"}') == {}


class Signers:
    sign_url = None
    sign_merge_url = None

    def sign_commit_url(self, commit: str, node: str) -> tuple[str, float]:
        return f"https://cloud/transfer/{commit}?node={node}", 1.0

    def sign_output_url(self, ref: ResourceRef, node: str) -> tuple[str, float]:
        return f"https://cloud/output/{ref.namespace}/{ref.name}?node={node}", 1.0


def pipeline(rv: int, annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    meta = {"name": "upper", "namespace": "default", "annotations": annotations}
    spec = {"input": {"pfs": {"repo": "docs", "glob": "/*"}}, **spec}
    return {"kind": "Pipeline", "metadata": {**meta, "resourceVersion": str(rv)}, "spec": spec}


def test_the_hub_places_a_handed_over_pipeline_on_its_worker_and_signs_only_its_commits() -> None:
    index = DesiredIndex()
    for rv, node in enumerate(("w1", "w2"), start=1):
        index.apply("ADDED", {"kind": "Node", "metadata": {"name": node}}, rv)
    ref = ResourceRef("Pipeline", "default", "upper")
    index.apply("ADDED", pipeline(3, {}), 3)  # the cloud runs it: no node holds it
    assert ref not in index.desired_refs("w1") and ref not in index.desired_refs("w2")

    notes = {
        "edgeweave.io/cloud-worker": "w1",
        "edgeweave.io/worker-inputs": encode_inputs({("docs", "master"): C1}),
    }
    marks = index.apply("MODIFIED", pipeline(4, notes), 4)
    assert ref in marks["w1"] and ref in index.desired_refs("w1")
    assert ref not in index.desired_refs("w2")
    signers = Signers()

    def ask(node: str, msg: m.CommitUrlRequest | m.OutputUrlRequest) -> m.Message:
        return answer_url_request(index, signers, node, msg)

    assert isinstance(ask("w1", m.CommitUrlRequest(commit=C1)), m.CommitUrl)
    for node, commit in (("w1", C2), ("w2", C1)):  # another commit; another node
        refused = ask(node, m.CommitUrlRequest(commit=commit))
        assert isinstance(refused, m.Error) and refused.reason == "Forbidden"
    upper = m.AppName(namespace="default", name="upper")
    out = ask("w1", m.OutputUrlRequest(pipeline=upper))
    assert isinstance(out, m.OutputUrl) and out.url.endswith("/default/upper?node=w1")
    refused = ask("w2", m.OutputUrlRequest(pipeline=upper))
    assert isinstance(refused, m.Error) and "not handed to cloud worker w2" in refused.message

    placed = pipeline(5, notes, placement={"nodeNames": ["w2"]})  # a node placement wins
    index.apply("MODIFIED", placed, 5)
    assert ref in index.desired_refs("w2") and ref not in index.desired_refs("w1")
    assert isinstance(ask("w1", m.OutputUrlRequest(pipeline=upper)), m.Error)

    index.apply("MODIFIED", pipeline(6, {}), 6)  # handed back to the cloud
    assert ref not in index.desired_refs("w1") and ref not in index.desired_refs("w2")
    assert isinstance(ask("w1", m.CommitUrlRequest(commit=C1)), m.Error)


def test_label_arguments_set_remove_and_refuse_bad_ones() -> None:
    assert parse_changes(["edgeweave.io/worker=cloud", "role-"]) == {
        "edgeweave.io/worker": "cloud",
        "role": None,
    }
    for bad in (["role"], ["-"], ["bad key=1"], ["k=bad value"]):
        with pytest.raises(UsageError):
            parse_changes(bad)
