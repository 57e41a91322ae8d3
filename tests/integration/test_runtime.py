"""The process runtime with real subprocesses, real files and loopback probes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.edge.runtime import AppStatus, ArtifactCache, Runtime, RuntimeSettings, process
from edgeweave.edge.runtime.desired import resolve
from edgeweave.edge.runtime.process import read_run_record, read_start_time

PY = sys.executable
FAST = RuntimeSettings(
    restart_backoff_base_s=0.05,
    restart_backoff_cap_s=0.4,
    stop_grace_s=2.0,
    log_check_interval_s=0.05,
)
SLEEP = "import time\nwhile True: time.sleep(0.2)\n"


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


class Objects:
    """Artifacts on a fake object store and a fetcher that serves them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.fetches: list[str] = []

    def put(self, content: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        (self.root / digest).write_bytes(content)
        return digest

    async def fetch(self, digest: str, dest: Path) -> None:
        self.fetches.append(digest)
        shutil.copyfile(self.root / digest, dest)


class Node:
    """A runtime under test plus what it reported."""

    def __init__(self, data: Path, objects: Objects, settings: RuntimeSettings = FAST) -> None:
        self.data = data
        self.reports: list[AppStatus] = []
        cache = ArtifactCache(data / "cache", objects.fetch)
        self.runtime = Runtime(data, "node-a", cache, self.reports.append, settings=settings)

    def app(self, name: str = "demo", ns: str = "default") -> AppStatus | None:
        return next((s for s in self.runtime.status() if (s.namespace, s.name) == (ns, name)), None)

    def app_dir(self, name: str = "demo", ns: str = "default") -> Path:
        return self.data / "apps" / ns / name

    async def wait_phase(self, phase: str, name: str = "demo", **match: Any) -> AppStatus:
        def check() -> AppStatus | None:
            s = self.app(name)
            if s is None or s.phase != phase:
                return None
            return s if all(getattr(s, k) == v for k, v in match.items()) else None

        result: AppStatus = await wait_for(check)
        return result


def make_app(name: str = "demo", run: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": "default", "generation": 1},
        "spec": {"lifecycle": {"run": run or [PY, "-c", SLEEP]}, **spec},
    }


def _kill_left_processes(data: Path) -> None:
    for run_file in data.glob("apps/*/*/run.json"):
        record = read_run_record(run_file)
        if record is None or read_start_time(record.pid) != record.start_time:
            continue
        with contextlib.suppress(OSError):
            os.killpg(record.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, 0)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    yield data
    # adopted or orphaned processes are not always our direct children: kill them here
    _kill_left_processes(data)


@pytest.fixture
def objects(tmp_path: Path) -> Objects:
    return Objects(tmp_path / "objects")


@pytest.fixture
async def node(data_dir: Path, objects: Objects) -> AsyncIterator[Node]:
    n = Node(data_dir, objects)
    yield n
    await n.runtime.aclose(stop_apps=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def gone(pid: int) -> bool:
    return read_start_time(pid) is None


# --- artifacts, workspace, env --------------------------------------------------------------

APP_PY = b"""
import json, os, pathlib, time
out = {
    "env": {k: v for k, v in os.environ.items()},
    "cwd": os.getcwd(),
    "config": pathlib.Path("config/settings/mode").read_text(),
    "secret": pathlib.Path("secrets/creds/password").read_text(),
    "secret_mode": oct(os.stat("secrets/creds/password").st_mode & 0o777),
    "secret_dir_mode": oct(os.stat("secrets/creds").st_mode & 0o777),
}
pathlib.Path("out.json").write_text(json.dumps(out))
while True:
    time.sleep(0.2)
"""

CONFIGMAP = {
    "apiVersion": "edgeweave.io/v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings", "namespace": "default"},
    "data": {"mode": "fast", "log-level": "debug"},
}
SECRET = {
    "apiVersion": "edgeweave.io/v1",
    "kind": "Secret",
    "metadata": {"name": "creds", "namespace": "default"},
    "data": {"password": "czNjcjN0"},  # base64("s3cr3t")
    "stringData": {"user": "edge"},
}


async def test_the_app_runs_its_verified_artifact_with_env_config_and_secret_files(
    node: Node, objects: Objects
) -> None:
    digest = objects.put(APP_PY)
    app = make_app(
        run=[PY, "app.py"],
        artifacts=[{"name": "app.py", "digest": digest}],
        env={"LOG_LEVEL": "info"},
        configRefs=[{"name": "settings", "envPrefix": "CFG_"}],
        secretRefs=[{"name": "creds"}],
    )
    await node.runtime.apply([app], [CONFIGMAP], [SECRET])
    status = await node.wait_phase("Running")
    out_file = node.app_dir() / "out.json"
    out = json.loads(await wait_for(lambda: out_file.exists() and out_file.read_text()))

    assert (node.app_dir() / "app.py").read_bytes() == APP_PY
    hex_ = digest.removeprefix("sha256:")
    assert (node.data / "cache" / "sha256" / hex_[:2] / hex_).read_bytes() == APP_PY
    assert out["cwd"] == str(node.app_dir())
    assert out["env"]["EDGEWEAVE_APP"] == "default/demo"
    assert out["env"]["EDGEWEAVE_NODE"] == "node-a"
    assert out["env"]["HOME"] == str(node.app_dir())
    assert out["env"]["LOG_LEVEL"] == "info"
    assert out["env"]["CFG_mode"] == "fast"
    assert out["env"]["CFG_log_level"] == "debug"
    assert "password" not in json.dumps(out["env"]).lower()
    assert out["config"] == "fast"
    assert out["secret"] == "s3cr3t"
    assert out["secret_mode"] == "0o600"
    assert out["secret_dir_mode"] == "0o700"
    assert (node.app_dir() / "secrets" / "creds" / "user").read_text() == "edge"
    assert status.pid is not None and status.ready and status.restarts == 0
    assert status.spec_hash and status.started_at is not None


async def test_a_bad_digest_fails_the_app_with_the_reason_and_runs_nothing(
    node: Node, objects: Objects
) -> None:
    wrong = "sha256:" + hashlib.sha256(b"what the app expects").hexdigest()
    (objects.root / wrong).write_bytes(b"tampered bytes")
    marker = node.data / "ran"
    app = make_app(
        run=[PY, "-c", f"open({str(marker)!r}, 'w').close()"],
        artifacts=[{"name": "model.bin", "digest": wrong}],
    )
    await node.runtime.apply([app])
    status = await node.wait_phase("Failed")

    assert f"expected {wrong}" in status.message
    assert "sha256:" + hashlib.sha256(b"tampered bytes").hexdigest() in status.message
    assert status.pid is None
    assert not marker.exists()
    assert not list((node.data / "cache").rglob("*.bin"))
    assert [p for p in (node.data / "cache").rglob("*") if p.is_file()] == []
    assert not (node.app_dir() / "model.bin").exists()


# --- install ----------------------------------------------------------------------------------

INSTALL_COUNT = "with open('installs.txt', 'a') as f: f.write('x')"


async def test_install_runs_once_per_spec_and_reapplying_changes_nothing(node: Node) -> None:
    app = make_app(lifecycle={"install": [PY, "-c", INSTALL_COUNT], "run": [PY, "-c", SLEEP]})
    await node.runtime.apply([app])
    first = await node.wait_phase("Running")
    reports = len(node.reports)

    await node.runtime.apply([app])
    await node.runtime.apply([app])
    await asyncio.sleep(0.2)  # give an (unwanted) restart the chance to show
    assert node.app() == first
    assert len(node.reports) == reports
    assert (node.app_dir() / "installs.txt").read_text() == "x"
    assert read_start_time(first.pid or 0) is not None


async def test_a_failing_install_fails_the_app_with_the_end_of_its_log(node: Node) -> None:
    script = "import sys; print('collecting deps'); print('no such package: foo'); sys.exit(3)"
    app = make_app(lifecycle={"install": [PY, "-c", script], "run": [PY, "-c", SLEEP]})
    await node.runtime.apply([app])
    status = await node.wait_phase("Failed")

    assert "exited with code 3" in status.message
    assert "no such package: foo" in status.message
    assert status.pid is None
    assert (node.app_dir() / "logs" / "install.log").read_text().startswith("collecting deps")


# --- changes and removal ----------------------------------------------------------------------


async def test_a_spec_or_config_change_restarts_with_a_new_pid(node: Node) -> None:
    await node.runtime.apply([make_app(env={"V": "1"})])
    first = await node.wait_phase("Running")

    generation_only = make_app(env={"V": "1"})
    generation_only["metadata"]["generation"] = 2
    await node.runtime.apply([generation_only])
    await wait_for(lambda: node.app() and node.app().generation == 2)  # type: ignore[union-attr]
    assert node.app().pid == first.pid  # type: ignore[union-attr]

    await node.runtime.apply([make_app(env={"V": "2"})])
    second = await wait_for(
        lambda: (s := node.app()) and s.phase == "Running" and s.pid != first.pid and s
    )
    assert gone(first.pid or 0)
    assert second.spec_hash != first.spec_hash

    cm = dict(CONFIGMAP)
    app = make_app(env={"V": "2"}, configRefs=[{"name": "settings"}])
    await node.runtime.apply([app], [cm])
    third = await wait_for(
        lambda: (s := node.app()) and s.phase == "Running" and s.pid != second.pid and s
    )
    await node.runtime.apply([app], [{**cm, "data": {"mode": "slow"}}])
    await wait_for(lambda: (s := node.app()) and s.phase == "Running" and s.pid != third.pid)
    assert (node.app_dir() / "config" / "settings" / "mode").read_text() == "slow"


async def test_removing_an_app_stops_its_whole_process_group(node: Node) -> None:
    child_pid_file = "child.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({child_pid_file!r}, 'w').write(str(p.pid))\n"
        "while True: time.sleep(0.2)\n"
    )
    await node.runtime.apply([make_app(run=[PY, "-c", script])])
    status = await node.wait_phase("Running")
    pid_file = node.app_dir() / child_pid_file
    child = int(await wait_for(lambda: pid_file.exists() and pid_file.read_text()))

    await node.runtime.apply([])
    assert node.runtime.status() == []
    assert gone(status.pid or 0)
    await wait_for(lambda: gone(child))
    assert not node.app_dir().exists()


# --- restart policies -------------------------------------------------------------------------


async def test_restart_policy_always_restarts_with_backoff_and_counts(node: Node) -> None:
    await node.runtime.apply([make_app(run=[PY, "-c", "raise SystemExit(0)"])])
    await wait_for(lambda: (s := node.app()) and s.restarts >= 3)
    # one message per exit (the restart counter bump re-reports it unchanged)
    messages = list(dict.fromkeys(r.message for r in node.reports if "restarting in" in r.message))
    delays = [float(m.split("restarting in ")[1].split(" s")[0]) for m in messages]
    assert delays[:3] == [0.05, 0.1, 0.2]  # each message is unique because the delay doubles
    assert "exited with code 0" in messages[0]


async def test_restart_policy_never_leaves_a_failed_app_stopped(node: Node) -> None:
    await node.runtime.apply(
        [make_app(run=[PY, "-c", "raise SystemExit(4)"], restartPolicy="Never")]
    )
    status = await node.wait_phase("Failed")
    await asyncio.sleep(0.2)
    assert node.app() == status
    assert status.restarts == 0 and "exited with code 4" in status.message


async def test_restart_policy_on_failure_restarts_only_after_a_non_zero_exit(node: Node) -> None:
    ok = make_app("ok", run=[PY, "-c", "pass"], restartPolicy="OnFailure")
    bad = make_app("bad", run=[PY, "-c", "raise SystemExit(2)"], restartPolicy="OnFailure")
    await node.runtime.apply([ok, bad])
    done = await node.wait_phase("Completed", name="ok")
    await wait_for(lambda: (s := node.app("bad")) and s.restarts >= 2)
    assert node.app("ok") == done and done.restarts == 0


# --- health probes ----------------------------------------------------------------------------


def _server_script(port: int, http: bool) -> str:
    if http:
        return (
            "import http.server, time\n"
            "time.sleep(0.3)\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        self.send_response(200 if self.path == '/healthz' else 404)\n"
            "        self.end_headers()\n"
            "    def log_message(self, *a): pass\n"
            f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
        )
    return (
        "import socket, time\n"
        "time.sleep(0.3)\n"
        f"s = socket.create_server(('127.0.0.1', {port}))\n"
        "while True: s.accept()[0].close()\n"
    )


@pytest.mark.parametrize("kind", ["http", "tcp"])
async def test_http_and_tcp_probes_flip_ready(node: Node, kind: str) -> None:
    port = free_port()
    probe: dict[str, Any] = {"port": "web"}
    if kind == "http":
        probe["path"] = "/healthz"
    app = make_app(
        run=[PY, "-c", _server_script(port, http=kind == "http")],
        ports=[{"name": "web", "port": port}],
        healthCheck={kind: probe, "periodSeconds": 1, "failureThreshold": 5},
    )
    await node.runtime.apply([app])
    ready = await node.wait_phase("Running", ready=True)
    first_running = next(r for r in node.reports if r.phase == "Running")
    assert first_running.ready is False
    assert ready.restarts == 0


async def test_a_failing_exec_probe_restarts_the_app(node: Node) -> None:
    app = make_app(
        healthCheck={
            "exec": {"command": [PY, "-c", "import os, sys; sys.exit(os.path.exists('sick'))"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )
    await node.runtime.apply([app])
    healthy = await node.wait_phase("Running", ready=True)
    (node.app_dir() / "sick").touch()
    restarted = await wait_for(lambda: (s := node.app()) and s.restarts >= 1 and s)
    assert gone(healthy.pid or 0)
    assert any("health check failed" in r.message for r in node.reports)
    assert restarted.pid != healthy.pid


# --- logs -------------------------------------------------------------------------------------


async def test_the_app_log_rotates_past_its_size_limit(data_dir: Path, objects: Objects) -> None:
    settings = RuntimeSettings(
        restart_backoff_base_s=0.05, log_check_interval_s=0.02, max_log_bytes=2000, log_keep=2
    )
    n = Node(data_dir, objects, settings)
    writer = (
        "import sys, time\nwhile True:\n    print('y' * 499, flush=True)\n    time.sleep(0.01)\n"
    )
    try:
        await n.runtime.apply([make_app(run=[PY, "-c", writer])])
        logs = n.app_dir() / "logs"
        await wait_for((logs / "app.log.2").exists, timeout=15)
        assert not (logs / "app.log.3").exists()
        assert (logs / "app.log.1").stat().st_size > 2000
        await wait_for(lambda: (logs / "app.log").stat().st_size < 10_000)
    finally:
        await n.runtime.aclose(stop_apps=True)


# --- adoption ---------------------------------------------------------------------------------


async def test_a_new_runtime_adopts_the_running_process_and_notices_its_end(
    data_dir: Path, objects: Objects
) -> None:
    app = make_app(restartPolicy="Never")
    a = Node(data_dir, objects)
    try:
        await a.runtime.apply([app])
        started = await a.wait_phase("Running")
    finally:
        await a.runtime.aclose(stop_apps=False)
    assert not gone(started.pid or 0)

    b = Node(data_dir, objects)
    try:
        await b.runtime.apply([app])
        adopted = await b.wait_phase("Running")
        assert adopted.pid == started.pid
        assert "adopted" in adopted.message
        os.killpg(started.pid or 0, signal.SIGKILL)
        ended = await b.wait_phase("Failed")
        assert "killed by SIGKILL" in ended.message or "exited" in ended.message
    finally:
        await b.runtime.aclose(stop_apps=True)


async def test_a_new_runtime_replaces_a_process_whose_spec_changed(
    data_dir: Path, objects: Objects
) -> None:
    a = Node(data_dir, objects)
    try:
        await a.runtime.apply([make_app(env={"V": "1"})])
        old = await a.wait_phase("Running")
    finally:
        await a.runtime.aclose()

    b = Node(data_dir, objects)
    try:
        await b.runtime.apply([make_app(env={"V": "2"})])
        new = await wait_for(
            lambda: (s := b.app()) and s.phase == "Running" and s.pid != old.pid and s
        )
        assert gone(old.pid or 0)
        assert read_run_record(b.app_dir() / "run.json").pid == new.pid  # type: ignore[union-attr]
    finally:
        await b.runtime.aclose(stop_apps=True)


async def test_a_stale_pid_file_is_ignored_and_leftover_apps_are_swept(
    data_dir: Path, objects: Objects
) -> None:
    a = Node(data_dir, objects)
    try:
        await a.runtime.apply([make_app("gone-app")])
        leftover = await a.wait_phase("Running", name="gone-app")
    finally:
        await a.runtime.aclose()
    app_dir = data_dir / "apps" / "default" / "demo"
    app_dir.mkdir(parents=True)
    stale = {"pid": os.getpid(), "start_time": 1, "spec_hash": "x"}
    (app_dir / "run.json").write_text(json.dumps(stale))

    b = Node(data_dir, objects)
    try:
        await b.runtime.apply([make_app()])
        fresh = await b.wait_phase("Running")
        assert fresh.pid != os.getpid() and "adopted" not in fresh.message
        assert gone(leftover.pid or 0)
        assert not (data_dir / "apps" / "default" / "gone-app").exists()
    finally:
        await b.runtime.aclose(stop_apps=True)


async def test_a_leftover_process_that_ends_while_being_swept_does_not_abort_apply(
    node: Node, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = data_dir / "apps" / "default" / "left"
    app_dir.mkdir(parents=True)
    record = {"pid": os.getpid(), "start_time": read_start_time(os.getpid()), "spec_hash": "x"}
    (app_dir / "run.json").write_text(json.dumps(record))

    def ended(pid: int) -> Any:  # it exits between is_running and Watched
        raise ProcessLookupError(pid)

    monkeypatch.setattr(process, "Watched", ended)
    await node.runtime.apply([])
    assert not app_dir.exists()


# --- limits -----------------------------------------------------------------------------------


async def test_resource_limits_are_applied_with_prlimit(node: Node) -> None:
    limits = {"openFiles": 123, "memory": "2Gi", "processes": 77}
    await node.runtime.apply([make_app(resources={"limits": limits})])
    status = await node.wait_phase("Running")
    text = Path(f"/proc/{status.pid}/limits").read_text()
    rows = {line[:26].strip(): line[26:].split()[:2] for line in text.splitlines()[1:]}
    assert rows["Max open files"] == ["123", "123"]
    assert rows["Max address space"] == [str(2 * 1024**3)] * 2
    assert rows["Max processes"] == ["77", "77"]
    # this machine may or may not allow cgroup v2: either way the app runs
    assert status.phase == "Running"


async def test_an_adopted_process_that_is_not_our_child_is_reported_as_exited(
    data_dir: Path, objects: Objects
) -> None:
    app = make_app(restartPolicy="Never")
    spec_hash = resolve([app], [], [])[("default", "demo")].spec_hash
    app_dir = data_dir / "apps" / "default" / "demo"
    (app_dir / "logs").mkdir(parents=True)
    # an intermediate process starts the app in its own session and exits: the app is
    # re-parented away from us, as after an agent restart
    launcher = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([{PY!r}, '-c', {SLEEP!r}], start_new_session=True,\n"
        "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid)\n"
    )
    out = subprocess.run([PY, "-c", launcher], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    record = {"pid": pid, "start_time": read_start_time(pid), "spec_hash": spec_hash}
    (app_dir / "run.json").write_text(json.dumps(record))  # the fixture kills it if we fail

    n = Node(data_dir, objects)
    try:
        await n.runtime.apply([app])
        adopted = await n.wait_phase("Running")
        assert adopted.pid == pid
        os.killpg(pid, signal.SIGTERM)
        ended = await n.wait_phase("Failed")
        assert ended.message.startswith("exited;")
    finally:
        await n.runtime.aclose(stop_apps=True)


async def test_a_missing_program_fails_and_a_missing_configmap_waits(node: Node) -> None:
    missing_prog = make_app("noprog", run=["/nonexistent/prog"], restartPolicy="Never")
    waits = make_app(configRefs=[{"name": "settings"}])
    await node.runtime.apply([missing_prog, waits])
    failed = await node.wait_phase("Failed", name="noprog")
    assert "could not start '/nonexistent/prog'" in failed.message
    pending = await node.wait_phase("Pending")
    assert "ConfigMap default/settings" in pending.message

    await node.runtime.apply([missing_prog, waits], [CONFIGMAP])
    await node.wait_phase("Running")
