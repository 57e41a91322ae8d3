"""The ``repo.commit`` report: a node's commit metadata, its file list omitted when large."""

from __future__ import annotations

import pytest

from edgeweave.errors import BadRequest
from edgeweave.pipelines.commitreport import (
    MAX_REPORT_BYTES,
    decode_commit_report,
    encode_commit_report,
)
from edgeweave.pipelines.commits import CommitInfo
from edgeweave.pipelines.transfer import CommitManifest

DIGEST = "a" * 64


def manifest(files: int) -> CommitManifest:
    info = CommitInfo(
        id="c" * 32,
        repo="frames",
        branch="master",
        parent=None,
        origin="user",
        created_at=1.0,
        finished_at=2.0,
    )
    rows = tuple((f"/frame-{i:06d}.jpg", DIGEST, 10) for i in range(files))
    return CommitManifest(info, rows, ((DIGEST, 10, (DIGEST,)),))


def test_a_small_commit_is_reported_with_its_files_a_large_one_with_their_count() -> None:
    small = decode_commit_report(encode_commit_report(manifest(3)))
    assert small.repo == "frames" and len(small.manifest.files) == 3
    assert small.omitted_files == 0
    many = 1 + MAX_REPORT_BYTES // 40  # surely over the limit
    payload = encode_commit_report(manifest(many))
    large = decode_commit_report(payload)
    assert large.manifest.files == () and large.manifest.info.id == "c" * 32
    assert (large.omitted_files, large.omitted_bytes) == (many, many * 10)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "repo.commit"),
        ({"manifest": {}}, "repo.commit.repo"),
        ({"repo": "frames", "manifest": {"commit": "x"}}, "manifest"),
        ({"repo": "other"}, "a commit of 'frames', not 'other'"),
        ({"repo": "frames", "omittedFiles": -1}, "repo.commit.omittedFiles"),
    ],
)
def test_malformed_reports_are_refused_naming_the_field(payload: object, field: str) -> None:
    if isinstance(payload, dict) and "manifest" not in payload and "repo" in payload:
        payload = {**encode_commit_report(manifest(1)), **payload}
    with pytest.raises(BadRequest, match=field):
        decode_commit_report(payload)
