"""The hub's desired-state index and upstream translation, without sockets or a store."""

from __future__ import annotations

from typing import Any

from edgeweave.cloud.hub.index import DesiredIndex
from edgeweave.cloud.hub.upstream import translate
from edgeweave.protocol.messages import UpstreamEntry
from edgeweave.protocol.refs import ResourceRef


class Feed:
    def __init__(self) -> None:
        self.index = DesiredIndex()
        self.rv = 0

    def put(self, obj: dict[str, Any], event: str = "MODIFIED") -> dict[str, set[ResourceRef]]:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        return self.index.apply(event, obj, self.rv)

    def node(self, name: str, **labels: str) -> dict[str, set[ResourceRef]]:
        return self.put({"kind": "Node", "metadata": {"name": name, "labels": labels}})

    def app(self, name: str, **spec: Any) -> dict[str, set[ResourceRef]]:
        return self.put(
            {"kind": "App", "metadata": {"name": name, "namespace": "default"}, "spec": spec}
        )

    def held(self, node: str) -> set[ResourceRef]:
        return set(self.index.desired_refs(node))


def r(kind: str, name: str, ns: str = "default") -> ResourceRef:
    return ResourceRef(kind, ns, name)


def test_selector_and_names_place_apps_on_matching_nodes_only() -> None:
    f = Feed()
    f.node("a", role="camera")
    f.node("b", role="gateway")
    f.app("cam", nodeSelector={"role": "camera"})
    f.app("both", nodeSelector={"role": "camera"}, nodeNames=["b"])
    f.app("named", nodeNames=["b"])
    f.app("nowhere")
    assert f.held("a") == {r("Node", "a", ""), r("App", "cam")}
    assert f.held("b") == {r("Node", "b", ""), r("App", "named")}


def test_relabelling_a_node_moves_selector_apps_and_marks_them() -> None:
    f = Feed()
    f.node("a", role="gateway")
    f.app("cam", nodeSelector={"role": "camera"}, secretRefs=[{"name": "key"}])
    f.put({"kind": "Secret", "metadata": {"name": "key", "namespace": "default"}, "data": {}})
    marks = f.node("a", role="camera")
    assert {r("App", "cam"), r("Secret", "key")} <= marks["a"]
    assert r("Secret", "key") in f.held("a")
    f.node("a", role="gateway")
    assert f.held("a") == {r("Node", "a", "")}


def test_referenced_objects_services_and_devices_follow_the_apps() -> None:
    f = Feed()
    f.node("a")
    f.put({"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"}})
    f.put({"kind": "Service", "metadata": {"name": "svc", "namespace": "default"}})
    f.put({"kind": "Service", "metadata": {"name": "other", "namespace": "prod"}})
    f.put({"kind": "DeviceModel", "metadata": {"name": "m", "namespace": "default"}})
    f.put(
        {
            "kind": "Device",
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {"nodeName": "a", "deviceModelRef": {"name": "m"}},
        }
    )
    assert f.held("a") == {r("Node", "a", ""), r("Device", "d"), r("DeviceModel", "m")}
    marks = f.app("x", nodeNames=["a"], configRefs=[{"name": "cfg"}])
    assert {r("App", "x"), r("ConfigMap", "cfg"), r("Service", "svc")} <= marks["a"]
    assert r("Service", "svc") in f.held("a") and r("Service", "other") not in f.held("a")
    # the Device order puts models before devices and both before apps
    assert [x.kind for x in f.index.desired_refs("a")][-1] == "App"


def test_status_only_changes_are_not_sent_again() -> None:
    f = Feed()
    f.node("a")
    f.app("x", nodeNames=["a"])
    entry = f.index.desired("a", r("App", "x"))
    assert entry is not None
    before = entry.rv
    marks = f.put(
        {
            "kind": "App",
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {"nodeNames": ["a"]},
            "status": {"nodes": {"a": {"phase": "Running"}}},
        }
    )
    assert marks == {}
    after = f.index.desired("a", r("App", "x"))
    assert after is not None and after.rv == before and "status" not in after.body


def test_upstream_translation_coalesces_status_and_refuses_foreign_apps() -> None:
    f = Feed()
    f.node("a")
    f.node("b")
    f.app("mine", nodeNames=["a"])
    f.app("theirs", nodeNames=["b"])

    def status(seq: int, name: str, phase: str) -> UpstreamEntry:
        payload = {"app": {"namespace": "default", "name": name}, "phase": phase}
        return UpstreamEntry(seq=seq, topic="app.status", payload=payload)

    entries = [
        status(1, "mine", "Old"),  # at or below committed: skipped
        status(2, "mine", "Installing"),
        status(3, "theirs", "Failed"),
        status(4, "mine", "Running"),
        UpstreamEntry(seq=5, topic="log", payload="noise"),
    ]
    out = translate("a", entries, committed=1, index=f.index)
    assert out.last_seq == 5
    assert out.skipped_topics == 1
    assert len(out.refused) == 1
    assert out.status_writes == [
        ("App", "default", "mine", {"nodes": {"a": None}}),
        ("App", "default", "mine", {"nodes": {"a": entries[3].payload}}),
    ]
    assert [row[6] for row in out.events] == ["UpstreamRefused"]  # (.., type, reason, message)


def pipeline(name: str, placement: Any) -> dict[str, Any]:
    return {
        "kind": "Pipeline",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"placement": placement},
    }


def test_pipelines_go_to_the_nodes_their_placement_selects() -> None:
    f = Feed()
    f.node("a", role="camera")
    f.node("b", role="gateway")
    marks = f.put(pipeline("detect", {"nodeSelector": {"role": "camera"}}))
    assert marks == {"a": {r("Pipeline", "detect")}}
    f.put(pipeline("named", {"nodeNames": ["b"]}))
    f.put(pipeline("central", "cloud"))
    assert r("Pipeline", "detect") in f.held("a")
    assert f.held("b") == {r("Node", "b", ""), r("Pipeline", "named")}
    assert f.index.nodes_of_pipeline(r("Pipeline", "central")) == frozenset()
    marks = f.node("b", role="camera")  # relabelled: gains the selector pipeline
    assert r("Pipeline", "detect") in marks["b"]
    assert f.index.nodes_of_pipeline(r("Pipeline", "detect")) == {"a", "b"}
    f.node("a", role="gateway")
    assert f.index.desired("a", r("Pipeline", "detect")) is None
    f.put(pipeline("detect", "cloud"))  # moved to the cloud: taken from the nodes
    assert f.index.nodes_of_pipeline(r("Pipeline", "detect")) == frozenset()


def test_pipeline_reports_are_committed_only_for_pipelines_placed_on_the_node() -> None:
    f = Feed()
    f.node("a", role="camera")
    f.node("b", role="gateway")
    f.put(pipeline("detect", {"nodeSelector": {"role": "camera"}}))
    job = {
        "id": "j1",
        "pipeline": "detect",
        "version": "v1",
        "state": "success",
        "startedAt": 1.0,
        "finishedAt": 2.0,
        "outputCommit": "c1",
        "inputs": [{"repo": "images", "branch": "master", "commit": "c0"}],
        "datums": {"total": 1, "processed": 1, "skipped": 0, "failed": 0, "recovered": 0},
        "bytesIn": 3,
        "bytesOut": 3,
    }
    ref = {"namespace": "default", "name": "detect"}
    datum = {
        "id": "d1",
        "name": "images:/a",
        "state": "success",
        "attempts": 1,
        "durationSeconds": 0.1,
        "bytesIn": 3,
        "bytesOut": 3,
    }
    entries = [
        UpstreamEntry(seq=1, topic="pipeline.status", payload={"pipeline": ref, "status": {}}),
        UpstreamEntry(
            seq=2, topic="pipeline.job", payload={"pipeline": ref, "job": job, "datums": [datum]}
        ),
        UpstreamEntry(
            seq=3, topic="pipeline.job", payload={"pipeline": ref, "job": {**job, "state": 7}}
        ),
    ]
    done = translate("a", entries, 0, f.index)
    assert [(j.job.id, j.job.state, len(j.datums)) for j in done.pipelines.jobs] == [
        ("j1", "success", 1)
    ]
    assert ("Pipeline", "default", "detect", {"nodes": {"a": {}}}) in done.status_writes
    assert len(done.refused) == 1 and "malformed" in done.refused[0]
    other = translate("b", entries, 0, f.index)
    assert other.pipelines.jobs == [] and len(other.refused) == 3


def test_a_copier_opens_only_the_commit_it_names_and_only_to_its_nodes() -> None:
    f = Feed()
    f.node("a", role="camera")
    f.node("b", role="gateway")
    copier = pipeline("model-pull", {"nodeSelector": {"role": "camera"}})
    copier["metadata"]["annotations"] = {"edgeweave.io/copier-commit": "c" * 32}
    marks = f.put(copier)
    assert marks == {"a": {r("Pipeline", "model-pull")}}
    assert f.index.copier_sends("a", "c" * 32)
    assert not f.index.copier_sends("a", "d" * 32)  # an older or foreign commit
    assert not f.index.copier_sends("b", "c" * 32)  # not placed there


def located_repo(name: str, location: Any) -> dict[str, Any]:
    spec = {"location": location} if location is not None else {}
    return {"kind": "Repo", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def commit_entry(seq: int, repo: str, files: list[Any]) -> UpstreamEntry:
    manifest = {
        "commit": {"id": "c" * 32, "repo": repo, "branch": "master", "finishedAt": 2.0},
        "files": files,
        "objects": [["d" * 64, 3, ["d" * 64]]] if files else [],
    }
    return UpstreamEntry(seq=seq, topic="repo.commit", payload={"repo": repo, "manifest": manifest})


def test_a_repo_goes_to_the_node_it_is_located_on_and_only_that_node_reports_its_commits() -> None:
    f = Feed()
    f.node("a")
    f.node("b")
    marks = f.put(located_repo("frames", {"node": "a"}))
    assert marks == {"a": {r("Repo", "frames")}}
    f.put(located_repo("central", "cloud"))
    f.put(located_repo("plain", None))
    assert f.held("a") == {r("Node", "a", ""), r("Repo", "frames")}
    assert f.held("b") == {r("Node", "b", "")}
    assert f.index.repo_on("a", "frames") and not f.index.repo_on("b", "frames")

    entries = [
        commit_entry(1, "frames", [["/f1.txt", "d" * 64, 3]]),
        commit_entry(2, "central", []),  # a cloud repo: no node reports for it
        UpstreamEntry(seq=3, topic="repo.commit", payload={"repo": "frames", "manifest": {}}),
    ]
    done = translate("a", entries, 0, f.index)
    assert [(c.repo, c.manifest.files) for c in done.pipelines.commits] == [
        ("frames", (("/f1.txt", "d" * 64, 3),))
    ]
    assert len(done.refused) == 2 and "not located on node a" in done.refused[0]
    assert translate("b", entries[:1], 0, f.index).pipelines.commits == []

    marks = f.put(located_repo("frames", {"node": "b"}))  # moved: taken from a, sent to b
    assert marks == {"a": {r("Repo", "frames")}, "b": {r("Repo", "frames")}}
    assert f.index.desired("a", r("Repo", "frames")) is None
    f.put(located_repo("frames", {"node": "b"}), event="DELETED")
    assert f.held("b") == {r("Node", "b", "")}
