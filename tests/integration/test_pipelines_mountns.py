"""Datums in a private mount namespace (root on Linux): an unchanged Pachyderm script with
hard-coded /pfs paths, the node's data directory hidden, a minimal environment, kills and
timeouts through the wrapper, batched code, and the same jobs with the namespace off.

Skipped when not root or when this machine cannot make mount namespaces (the probe says why).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipeline_rig import group_members

from edgeweave.pipelines.jobs import JobResult, JobRunner
from edgeweave.pipelines.mountns import (
    FastPath,
    MountNamespace,
    hidden_dirs,
    probe_mount_namespace,
)
from edgeweave.pipelines.plan import DatumState
from edgeweave.pipelines.repo import Repos, open_repos
from edgeweave.pipelines.runner import DatumRunner
from edgeweave.pipelines.spec import PipelineDoc, parse_pipeline_specs

# Written for Pachyderm: no path comes from argv or the environment. Each datum waits (at
# most 10 s) until the other one started too, so the two run at the same time, each in its
# own namespace.
PACHYDERM_SCRIPT = r"""
import glob, os, sys, time
shared = sys.argv[1]
names = [os.path.basename(p) for p in glob.glob("/pfs/images/*")]
open(os.path.join(shared, "started-" + names[0]), "w").close()
deadline = time.monotonic() + 10
while len(glob.glob(os.path.join(shared, "started-*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
os.makedirs("/pfs/out/upper", exist_ok=True)
for name in names:
    with open("/pfs/images/" + name) as f, open("/pfs/out/upper/" + name, "w") as out:
        out.write(f.read().upper())
with open("/pfs/out/seen-" + names[0], "w") as f:
    f.write(" ".join(sorted(os.listdir("/pfs/images"))) + "|" + os.getcwd())
"""

A_ONLY = {"pfs": {"repo": "images", "glob": "/a.txt"}}
ENV_DUMP = "import json, os; json.dump(dict(os.environ), open('/pfs/out/env.json', 'w'))"


@pytest.fixture(scope="module")
def namespace() -> MountNamespace:
    ns, why = asyncio.run(probe_mount_namespace("auto", []))
    if ns is None:
        pytest.skip(why)
    return ns


@dataclass
class Node:
    """A node's data directory as an agent lays it out: its key, and the pipelines' work."""

    repos: Repos
    data: Path
    work: Path
    key: bytes

    def jobs(self, namespace: MountNamespace | None) -> JobRunner:
        if namespace is not None:
            namespace = dataclasses.replace(namespace, hidden=hidden_dirs([self.data]))
        return JobRunner(self.repos, DatumRunner(self.work, self.repos, namespace=namespace))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    data = tmp_path / "node"
    (data / "pki").mkdir(parents=True)
    key = b"-----BEGIN PRIVATE KEY----- the node's own"
    (data / "pki" / "node.key").write_bytes(key)
    async with open_repos(data / "pipelines" / "repos", fsync=False) as repos:
        await repos.create_repo("images")
        c = await repos.start_commit("images")
        await repos.put_files(c.id, [("/a.txt", b"hello"), ("/b.txt", b"world")])
        await repos.finish_commit(c.id)
        yield Node(repos, data, data / "pipelines" / "work", key)


def pipeline(transform: dict[str, Any], **spec: Any) -> PipelineDoc:
    doc = {
        "pipeline": {"name": "upper"},
        "transform": transform,
        "input": {"pfs": {"repo": "images", "glob": "/*"}},
    }
    doc.update(spec)
    return parse_pipeline_specs(json.dumps(doc))[0]


async def outputs(repos: Repos, job: JobResult) -> dict[str, bytes]:
    assert job.output_commit is not None
    tree = await repos.tree(job.output_commit)
    return {p: await repos.get_file(job.output_commit, p) for p in tree.paths}


def mounted_at_pfs() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == "/pfs" for line in f)


async def test_an_unchanged_pachyderm_script_reads_and_writes_hard_coded_pfs_paths(
    node: Node, namespace: MountNamespace, tmp_path: Path
) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "script.py").write_text(PACHYDERM_SCRIPT)
    cmd = [sys.executable, str(tmp_path / "script.py"), str(tmp_path / "shared")]
    doc = pipeline({"cmd": cmd}, parallelism_spec={"constant": 2})
    job = await node.jobs(namespace).run_job(doc)
    assert job.state == "success", job.error + "".join(d.log_tail for d in job.datums)
    files = await outputs(node.repos, job)
    assert files["/upper/a.txt"] == b"HELLO" and files["/upper/b.txt"] == b"WORLD"
    # run together, each saw only its own datum at /pfs, and started in /pfs
    assert files["/seen-a.txt"] == b"a.txt|/pfs" and files["/seen-b.txt"] == b"b.txt|/pfs"
    assert sorted(os.listdir(tmp_path / "shared")) == ["started-a.txt", "started-b.txt"]
    assert not mounted_at_pfs()  # nothing leaked to the host


async def test_the_same_script_without_the_namespace_fails(node: Node, tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "script.py").write_text(PACHYDERM_SCRIPT)
    cmd = [sys.executable, str(tmp_path / "script.py"), str(tmp_path / "shared")]
    job = await node.jobs(None).run_job(pipeline({"cmd": cmd}, datum_tries=1))
    assert job.state == "failure"  # the host's /pfs holds no datum: what $PFS is for


async def test_user_code_finds_the_data_directory_empty_and_cannot_uncover_it(
    node: Node, namespace: MountNamespace
) -> None:
    data = node.data
    script = (
        f"ls -A {data} > /pfs/out/ls; "
        f"cat {data}/pki/node.key > /pfs/out/key 2>&1; "
        f"umount {data} > /pfs/out/umount 2>&1; cat {data}/pki/node.key >> /pfs/out/key 2>&1; "
        f"cat /proc/{os.getpid()}/root{data}/pki/node.key > /pfs/out/proc 2>&1; "
        f"touch {data}/planted > /pfs/out/write 2>&1; "
        "ls /dev > /pfs/out/dev; true"
    )
    job = await node.jobs(namespace).run_job(pipeline({"cmd": ["sh", "-c", script]}, input=A_ONLY))
    assert job.state == "success", job.error
    files = {p: v.decode() for p, v in (await outputs(node.repos, job)).items()}
    assert files["/ls"] == ""  # the key, the repos, the work directory: none of it
    assert "No such file" in files["/key"] and node.key.decode() not in "".join(files.values())
    assert "must be superuser" in files["/umount"] or "ermission" in files["/umount"]
    assert "ermission denied" in files["/proc"]  # not through the agent's /proc/PID/root
    assert "Read-only" in files["/write"] and not (data / "planted").exists()
    assert files["/dev"].split() == [
        "fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"
    ]  # fmt: skip
    assert (data / "pki" / "node.key").read_bytes() == node.key  # the host's view is intact


@pytest.mark.parametrize("isolated", [True, False], ids=["namespace", "off"])
async def test_user_code_gets_only_the_pfs_contract_environment(
    node: Node, isolated: bool, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("EDGEWEAVE_LINK__TOKEN", "agent-secret")
    monkeypatch.setenv("API_TOKEN", "agent-token")
    namespace = request.getfixturevalue("namespace") if isolated else None  # may skip
    jobs = node.jobs(namespace)  # its base environment read now
    transform = {"cmd": [sys.executable, "-c", ENV_DUMP], "env": {"M": "1"}}
    # an input name no shell would pass on as a variable, as the repo people-frames gives
    named = {"pfs": {"repo": "images", "glob": "/a.txt", "name": "my-images"}}
    job = await jobs.run_job(pipeline(transform, input=named))
    assert job.state == "success", job.error
    env = json.loads((await outputs(node.repos, job))["/env.json"])
    assert not [k for k in env if k.startswith("EDGEWEAVE_")]
    assert "agent-secret" not in json.dumps(env) and "agent-token" not in json.dumps(env)
    pach = {"PFS", "PACH_JOB_ID", "PACH_DATUM_ID", "PACH_OUTPUT_COMMIT_ID", "my-images_COMMIT"}
    base = {k for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    assert set(env) - {"LC_CTYPE"} == pach | base | {"my-images", "M"}
    if isolated:
        assert (env["PFS"], env["my-images"]) == ("/pfs", "/pfs/my-images/a.txt")
    else:
        assert env["PFS"].startswith(str(node.work)) and env["my-images"].startswith(env["PFS"])


async def test_a_timeout_and_a_cancel_kill_the_code_through_the_namespace(
    node: Node, namespace: MountNamespace, tmp_path: Path
) -> None:
    shared = tmp_path / "pids"
    shared.mkdir()
    hang = ["sh", "-c", 'sleep 60 & echo $$ > "$PIDS/$(basename $images)"; wait']
    doc = pipeline(
        {"cmd": hang, "env": {"PIDS": str(shared)}}, datum_timeout="300ms", datum_tries=1
    )
    jobs = node.jobs(namespace)
    job = await jobs.run_job(doc)
    assert job.state == "failure" and "timed out after 0.3s" in job.datums[0].error
    pids = [int(p.read_text()) for p in shared.iterdir()]
    assert len(pids) == 2
    await wait_groups_gone(pids)

    for p in shared.iterdir():
        p.unlink()
    task = asyncio.create_task(jobs.run_job(pipeline({"cmd": hang, "env": {"PIDS": str(shared)}})))
    async with asyncio.timeout(10):
        while len(os.listdir(shared)) < 1:
            await asyncio.sleep(0.01)  # polling for the code's pid file, bounded
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_groups_gone([int(p.read_text()) for p in shared.iterdir() if p.read_text()])


async def wait_groups_gone(pgids: list[int]) -> None:
    async with asyncio.timeout(5):  # SIGKILL to the groups was sent; delivery is async
        while any(group_members(g) for g in pgids):
            await asyncio.sleep(0.01)


async def test_err_cmd_runs_in_the_namespace_and_a_missing_program_is_named(
    node: Node, namespace: MountNamespace
) -> None:
    jobs = node.jobs(namespace)
    doc = pipeline(
        {"cmd": ["false"], "err_cmd": ["test", "-f", "/pfs/images/a.txt"]}, datum_tries=1
    )
    job = await jobs.run_job(doc)
    states = sorted((d.name, d.state) for d in job.datums)
    assert states == [("images:/a.txt", DatumState.RECOVERED), ("images:/b.txt", DatumState.FAILED)]
    missing = await jobs.run_job(pipeline({"cmd": ["/pfs/images/nope"]}, datum_tries=1))
    assert "cannot start '/pfs/images/nope'" in missing.datums[0].error
    runs = await jobs.run_job(pipeline({"cmd": ["/bin/sh", "-c", "cp $images /pfs/out/"]}))
    assert runs.state == "success" and runs.processed == 2


BATCHED = r"""
import json, os, sys
for line in sys.stdin:
    d = json.loads(line)
    name = os.path.basename(d["images"])
    with open(os.path.join(d["PFS"], "out", name), "w") as f:
        f.write(open(d["images"]).read() + "|" + ",".join(os.listdir(sys.argv[1])))
    print("ok", flush=True)
"""


async def test_batched_code_runs_with_the_data_directory_hidden_but_its_job_visible(
    node: Node, namespace: MountNamespace, tmp_path: Path
) -> None:
    (tmp_path / "code.py").write_text(BATCHED)
    cmd = [sys.executable, str(tmp_path / "code.py"), str(node.data)]
    job = await node.jobs(namespace).run_job(pipeline({"cmd": cmd}, datum_batching=True))
    assert job.state == "success", job.error + "".join(d.log_tail for d in job.datums)
    # the data directory lists only the way down to the job's directory
    assert await outputs(node.repos, job) == {
        "/a.txt": b"hello|pipelines",
        "/b.txt": b"world|pipelines",
    }


async def test_the_setting_off_and_a_bad_mode(tmp_path: Path) -> None:
    ns, why = await probe_mount_namespace("off", [tmp_path])
    assert ns is None and "off (setting)" in why and "$PFS" in why
    with pytest.raises(ValueError, match="mount_namespace"):
        await probe_mount_namespace("on", [])


def test_the_fast_path_escapes_fstab_fields_and_leaves_what_it_cannot_to_nsexec() -> None:
    fast = FastPath("unshare", "sh", "mount", "setpriv", "env", Path("/run/x/dev"))
    ns = MountNamespace("python", hidden=(Path("/d\\ir\n#"),), fast=fast)
    fstab, cwd = fast.fstab(ns.datum_steps(Path("/a b"), "/pfs")) or ("", "")
    assert cwd == "/pfs" and fstab.splitlines() == [
        "/a\\040b /pfs none bind 0 0",
        "/run/x/dev /dev none bind,ro,nosuid,noexec 0 0",
        "edgeweave-shm /dev/shm tmpfs nosuid,nodev,mode=1777 0 0",
        "edgeweave-hidden /run/x tmpfs ro,nosuid,nodev,noexec,size=4k 0 0",
        "edgeweave-hidden /d\\134ir\\012\\043 tmpfs ro,nosuid,nodev,noexec,size=4k 0 0",
    ]
    assert fast.fstab(ns.process_steps(Path("/d\\ir\n#/k"), Path("/"))) is None  # nsexec


async def test_a_datum_process_is_the_runner_s_child_with_no_stray_descriptor(
    namespace: MountNamespace, tmp_path: Path
) -> None:
    for ns in {namespace, dataclasses.replace(namespace, fast=None)}:  # the fast path, nsexec
        proc = await ns.spawn(
            ns.datum_steps(tmp_path, "/pfs"),
            [
                sys.executable,
                "-c",
                "import os; print(os.getpid(), sorted(os.listdir('/proc/self/fd')))",
            ],
            {"my-images": "/pfs/x", "PATH": os.environ["PATH"]},
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        out, _ = await proc.communicate()
        pid, fds = out.decode().split(" ", 1)
        assert int(pid) == proc.pid and fds.strip() == "['0', '1', '2', '3']", (ns.fast, out)
