"""Pure parts of the process runtime: hashing, restart policy, rotation, cgroup files,
artifact cache and placement (files only; no sockets, no processes)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from edgeweave.aio.backoff import Backoff
from edgeweave.edge.runtime import ArtifactCache, ArtifactMismatch, materialize
from edgeweave.edge.runtime.artifacts import check_artifact_name
from edgeweave.edge.runtime.cgroups import Cgroups
from edgeweave.edge.runtime.desired import resolve
from edgeweave.edge.runtime.logs import rotate_if_needed
from edgeweave.edge.runtime.policy import should_restart
from edgeweave.edge.runtime.process import RunRecord, read_run_record, write_run_record
from edgeweave.edge.runtime.status import AppStatus

CM = {
    "apiVersion": "edgeweave.io/v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cfg", "namespace": "default"},
    "data": {"a": "1"},
}


def app(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": "x", "namespace": "default", "generation": generation},
        "spec": {"lifecycle": {"run": ["prog"]}, "configRefs": [{"name": "cfg"}], **spec},
    }


def spec_hash(apps: list[Any], cms: list[Any]) -> str:
    return resolve(apps, cms, [])[("default", "x")].spec_hash


def test_the_spec_hash_ignores_generation_but_follows_spec_and_config_content() -> None:
    base = spec_hash([app()], [CM])
    assert spec_hash([app(generation=7)], [CM]) == base
    assert spec_hash([app(env={"A": "b"})], [CM]) != base
    assert spec_hash([app()], [{**CM, "data": {"a": "2"}}]) != base
    assert spec_hash([app()], []) != base


def test_a_missing_reference_or_an_invalid_app_is_a_problem_not_an_exception() -> None:
    missing = resolve([app()], [], [])[("default", "x")]
    assert "ConfigMap default/cfg" in missing.problem
    broken = app()
    broken["spec"]["lifecycle"]["run"] = "prog --flag"
    invalid = resolve([broken], [CM], [])[("default", "x")]
    assert invalid.spec is None and invalid.problem.startswith("App default/x is invalid")


def test_restart_policies_and_backoff() -> None:
    assert should_restart("Always", 0) and should_restart("Always", 1)
    assert should_restart("OnFailure", 1) and should_restart("OnFailure", None)
    assert not should_restart("OnFailure", 0)
    assert not should_restart("Never", 1)
    b = Backoff(1.0, 300.0, jitter=False)  # an app's restarts: no jitter needed
    assert [b.next_delay() for _ in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    b.reset()
    assert b.next_delay() == 1.0


def test_copy_truncate_rotation_keeps_the_newest_copies(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    for i in range(4):
        log.write_bytes(str(i).encode() * 20)
        assert rotate_if_needed(log, 10, keep=2)
    assert log.stat().st_size == 0
    assert (tmp_path / "app.log.1").read_bytes() == b"3" * 20
    assert (tmp_path / "app.log.2").read_bytes() == b"2" * 20
    assert not (tmp_path / "app.log.3").exists()
    log.write_bytes(b"small")
    assert not rotate_if_needed(log, 10, keep=2)


def test_cgroup_limits_are_written_for_the_app_group(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    cg = Cgroups(tmp_path, "edgeweave.slice", check_mount=False)
    assert cg.place(4242, "default_x", 64 * 1024 * 1024, 500) == ""
    group = tmp_path / "edgeweave.slice" / "default_x"
    assert (group / "memory.max").read_text() == str(64 * 1024 * 1024)
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert (group / "cgroup.procs").read_text() == "4242"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory"


def test_cgroups_that_are_not_usable_are_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids\n")
    cg = Cgroups(tmp_path, "edgeweave.slice", check_mount=False)
    assert "controllers ['memory'] not available" in cg.place(1, "g", 1024, None)
    assert "not a cgroup v2 mount" in Cgroups(tmp_path, "s").place(1, "g", 1024, None)
    assert cg.place(1, "g", None, None) == ""


def test_run_records_round_trip_and_garbage_reads_as_none(tmp_path: Path) -> None:
    record = RunRecord(pid=12, start_time=34, spec_hash="ab", started_at=1.5, restarts=2)
    write_run_record(tmp_path / "run.json", record)
    assert read_run_record(tmp_path / "run.json") == record
    (tmp_path / "run.json").write_text("{not json")
    assert read_run_record(tmp_path / "run.json") is None
    assert read_run_record(tmp_path / "absent.json") is None


def test_the_status_payload_has_the_outbox_shape() -> None:
    payload = AppStatus("default", "x", 3, "Running", True, 99, 1, "", 10.0, "h").to_payload()
    assert payload == {
        "app": {"namespace": "default", "name": "x"},
        "generation": 3,
        "phase": "Running",
        "ready": True,
        "pid": 99,
        "restarts": 1,
        "message": "",
        "started_at": 10.0,
        "spec_hash": "h",
    }


@pytest.mark.parametrize("name", ["", "/abs", "../up", "a/../b", "logs", "run.json", "a//b"])
def test_artifact_names_cannot_escape_or_shadow_the_runtime(name: str) -> None:
    with pytest.raises(ValueError, match="artifact name"):
        check_artifact_name(name)


class CountingFetcher:
    def __init__(self, content: bytes) -> None:
        self.content = content
        self.calls = 0

    async def __call__(self, digest: str, dest: Path) -> None:
        self.calls += 1
        await asyncio.sleep(0.01)
        dest.write_bytes(self.content)


async def test_concurrent_ensures_of_one_digest_fetch_once(tmp_path: Path) -> None:
    content = b"model weights"
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    fetch = CountingFetcher(content)
    cache = ArtifactCache(tmp_path / "cache", fetch)
    paths = await asyncio.gather(*(cache.ensure(digest) for _ in range(5)))
    assert fetch.calls == 1
    assert len(set(paths)) == 1 and paths[0].read_bytes() == content
    assert paths[0].parent.name == digest.removeprefix("sha256:")[:2]


async def test_a_mismatching_download_raises_and_leaves_nothing(tmp_path: Path) -> None:
    digest = "sha256:" + hashlib.sha256(b"expected").hexdigest()
    cache = ArtifactCache(tmp_path / "cache", CountingFetcher(b"other"))
    with pytest.raises(ArtifactMismatch, match=f"expected {digest}, got sha256:"):
        await cache.ensure(digest)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    assert not cache.has(digest)


def test_materialize_links_new_artifacts_and_drops_old_ones(tmp_path: Path) -> None:
    src = tmp_path / "blob"
    src.write_bytes(b"data")
    app_dir = tmp_path / "app"
    materialize(app_dir, [("old.bin", src), ("lib/util.py", src)])
    assert os.path.samefile(app_dir / "lib" / "util.py", src)
    materialize(app_dir, [("lib/util.py", src)])
    assert not (app_dir / "old.bin").exists()
    assert (app_dir / "lib" / "util.py").read_bytes() == b"data"
