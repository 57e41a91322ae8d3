"""What lineage across nodes rests on, without stores: a merged path maps back to the path
the node delivered, and a job report carries each datum's identity and outputs (checked,
bounded) while reports of older nodes, without them, are still read."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from edgeweave.errors import BadRequest
from edgeweave.pipelines.datums import id_of_identity, part_identity
from edgeweave.pipelines.jobinfo import DatumInfo, JobInfo, LineageNode
from edgeweave.pipelines.jobreport import (
    MAX_LINEAGE_CHARS,
    MAX_REPORT_BYTES,
    decode_job_report,
    encode_job_report,
)
from edgeweave.pipelines.mergedview import (
    NODE_KEY,
    merged_path,
    parse_provenance,
    provenance_entry,
    source_paths,
)

COMMIT = "c" * 32


def test_a_merged_path_maps_back_to_the_path_under_its_node_for_both_keyings() -> None:
    for key, path in ((NODE_KEY, "/lobby-0820.png"), ("batch-7", "/batch-7/counts.json")):
        merged = merged_path(key, "edge-1", path)
        assert path in source_paths(merged, "edge-1")
        assert source_paths(merged, "edge-2") == []
    assert source_paths("/edge-1/a/b.txt", "edge-1") == ["/a/b.txt"]
    assert source_paths("/k/edge-1/b.txt", "edge-1") == ["/b.txt"]
    # a key named like the node: both readings, the node keying first
    assert source_paths("/edge-1/edge-1/x", "edge-1") == ["/edge-1/x", "/x"]
    assert source_paths("/edge-1", "edge-1") == []
    assert parse_provenance(provenance_entry("people-frames", COMMIT)) == ("people-frames", COMMIT)
    assert parse_provenance("node:edge-1") is None


def job(**extra: Any) -> JobInfo:
    fields: dict[str, Any] = {
        "id": "j" * 32,
        "pipeline": "people",
        "version": "v" * 16,
        "state": "success",
        "seq": 3,
        "started_at": 1.0,
        "finished_at": 2.0,
        "output_commit": "a" * 32,
        "inputs": (("frames", "master", COMMIT),),
        "input_commits": {"frames": COMMIT},
        "total": 1,
        "processed": 1,
    }
    return JobInfo(**{**fields, **extra})


def datum(path: str) -> tuple[DatumInfo, str]:
    identity = part_identity("frames", "frames", path)
    return DatumInfo("j" * 32, id_of_identity(identity), f"frames:{path}", "success"), identity


def test_a_job_report_round_trips_input_commits_and_each_datums_identity_and_outputs() -> None:
    info, identity = datum("/lobby-0820.png")
    lineage = {info.id: (identity, ("/lobby-0820.png",))}
    payload = json.loads(json.dumps(encode_job_report("default", job(), [info], lineage)))
    report = decode_job_report(payload)
    assert report.job.input_commits == {"frames": COMMIT}
    assert report.lineage == lineage
    assert [d.id for d in report.datums] == [info.id]


def test_a_report_of_an_older_node_without_the_lineage_fields_is_read() -> None:
    info, _ = datum("/a.png")
    payload = encode_job_report("default", job(), [info])
    del payload["job"]["inputCommits"]
    report = decode_job_report(json.loads(json.dumps(payload)))
    assert (report.job.input_commits, report.lineage) == ({}, {})
    assert [d.id for d in report.datums] == [info.id]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda p: p["datums"][0].update(identity="frames\x1fframes\x1f/other"),
            "datums[].identity",
        ),
        (lambda p: p["datums"][0].update(identity=7), "datums[].identity"),
        (lambda p: p["datums"][0].update(outputs="/a.png"), "datums[].outputs"),
        (lambda p: p["datums"][0].update(outputs=["a.png"]), "datums[].outputs[]"),
        (lambda p: p["datums"][0].pop("identity"), "datums[].identity"),
        (lambda p: p["job"].update(inputCommits={"frames": "HEAD"}), "job.inputCommits.frames"),
        (lambda p: p["job"].update(inputCommits=["frames"]), "job.inputCommits"),
    ],
)
def test_a_malformed_lineage_field_is_refused_naming_it(change: Any, field: str) -> None:
    info, identity = datum("/a.png")
    payload = encode_job_report("default", job(), [info], {info.id: (identity, ("/a.png",))})
    change(payload)
    with pytest.raises(BadRequest, match=f"^{re.escape(field)}:"):
        decode_job_report(payload)


def test_a_large_job_report_stays_under_its_limits() -> None:
    datums, lineage = [], {}
    for i in range(1000):
        info, identity = datum(f"/dir-{i:04d}")
        datums.append(DatumInfo(info.job, info.id, info.name, "success", log_tail="x" * 512))
        lineage[info.id] = (identity, tuple(f"/dir-{i:04d}/out-{k:03d}.json" for k in range(20)))
    payload = encode_job_report("default", job(total=1000), datums, lineage)
    assert len(json.dumps(payload)) <= MAX_REPORT_BYTES
    carried = [d for d in payload["datums"] if "outputs" in d]
    assert 0 < len(carried) < len(payload["datums"])  # the first datums carry their lineage
    cost = sum(len(d["identity"]) + sum(len(p) + 4 for p in d["outputs"]) for d in carried)
    assert cost <= MAX_LINEAGE_CHARS
    report = decode_job_report(json.loads(json.dumps(payload)))
    assert len(report.lineage) == len(carried)


def test_a_file_on_a_node_shows_where_it_lives_and_that_its_size_is_unknown() -> None:
    leaf = LineageNode("frames", COMMIT, "/a.png", "", None, node="edge-1")
    assert leaf.as_json() == {
        "repo": "frames",
        "commit": COMMIT,
        "path": "/a.png",
        "digest": "",
        "size": None,
        "node": "edge-1",
        "inputs": [],
    }
