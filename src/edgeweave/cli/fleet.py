"""A local fleet of real processes: one cloud and N agents, each with its own data dir.

What `edgeweave demo` runs, and what end-to-end tests and benchmarks drive: the real
commands (`cloud serve`, `token create`, `edge join`, `edge run`) as child processes, with argv
lists only. Ports are chosen up front so a cloud restarted on the same data dir keeps its
addresses (agents reconnect to the same URL). Stopping the fleet stops everything it started,
including app processes the agents left running for adoption.

Every process gets this environment with the running interpreter's directory first on
``PATH``: ``python3`` in a pipeline's ``cmd`` is then the interpreter (and virtualenv)
edgeweave runs on, with the packages installed beside it — the example pipelines' user code
imports numpy and OpenCV (the ``vision`` extra) — whatever the caller's ``PATH`` holds.

Every agent of a fleet shares this machine, so each gets its own mesh settings: a DNS port and
a service CIDR (``127.<101+i>.0.0/16``) chosen at its first start and kept across restarts,
and ``127.0.0.1`` as its advertised address (a test may advertise another one).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgeweave.errors import EdgeweaveError

if TYPE_CHECKING:
    from edgeweave.client.http import Client

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05


class FleetError(EdgeweaveError):
    reason = "FleetError"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = POLL_S
) -> None:
    """Poll ``predicate`` until true; processes offer no event to wait on. A predicate that
    runs a command should poll less often (``poll_s``): each look starts a process."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise FleetError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def fleet_env() -> dict[str, str]:
    """This process's environment, the interpreter's directory first on ``PATH``."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir]
    env["PATH"] = os.pathsep.join([bindir, *path])
    return env


def _edgeweave(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeweave", *args]


@dataclass
class Proc:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Fleet:
    root: Path
    env: dict[str, str] = field(default_factory=fleet_env)
    api_port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    cloud: Proc | None = None
    agents: dict[str, Proc] = field(default_factory=dict)
    agents_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def cloud_dir(self) -> Path:
        return self.root / "cloud"

    @property
    def admin_config(self) -> Path:
        return self.cloud_dir / "admin.yaml"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def agent_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def cli(self, *args: str, check: bool = True, timeout_s: float = 60.0) -> str:
        """Run an `edgeweave` command against this fleet's cloud; its stdout."""
        argv = _edgeweave("--config", str(self.admin_config), *args)
        r = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=timeout_s, check=False
        )
        if check and r.returncode != 0:
            raise FleetError(
                f"`edgeweave {' '.join(args)}` exited {r.returncode}: {r.stderr.strip()}"
            )
        return r.stdout

    def client(self) -> Client:
        """An HTTP client of this fleet's cloud, as its admin: to watch for a condition
        without starting a command per look (close it, or use it in a ``with``)."""
        from edgeweave.client.config import load_config
        from edgeweave.client.http import Client

        return Client(load_config(str(self.admin_config)))

    def node_cli(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run an `edgeweave` command as a user on a node would (no cloud config); stdout."""
        r = subprocess.run(
            _edgeweave(*args),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout_s,
            check=False,
        )
        if r.returncode != 0:
            raise FleetError(
                f"`edgeweave {' '.join(args)}` exited {r.returncode}: {r.stderr.strip()}"
            )
        return r.stdout

    def start_cloud(self, *extra: str) -> Proc:
        self.admin_config.unlink(missing_ok=True)
        argv = _edgeweave(
            "cloud",
            "serve",
            "--data",
            str(self.cloud_dir),
            "--port",
            str(self.api_port),
            "--hub-port",
            str(self.hub_port),
            "--no-user-config",
            *extra,
        )
        self.cloud = Proc("cloud", argv, self.root / "logs" / "cloud.log", self.env)
        self.cloud.start()
        cloud = self.cloud
        wait_until(lambda: self._cloud_ready(cloud), STARTUP_TIMEOUT_S, "the cloud to serve")
        return cloud

    def _cloud_ready(self, cloud: Proc) -> bool:
        if not cloud.alive():
            raise FleetError(f"the cloud exited; its log:\n{cloud.log_tail()}")
        if not self.admin_config.exists():
            return False
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.hub_port)) == 0

    def join(self, name: str, labels: dict[str, str] | None = None) -> Path:
        token = self.cli("token", "create", "--node", name).strip()
        data = self.agent_dir(name)
        label_text = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        argv = _edgeweave(
            "edge",
            "join",
            "--server",
            self.api_url,
            "--token",
            token,
            "--name",
            name,
            "--data",
            str(data),
            "--labels",
            label_text,
        )
        r = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=60, check=False
        )
        if r.returncode != 0:
            raise FleetError(f"joining {name} failed: {r.stderr.strip()}")
        return data

    def agent_env(self, name: str) -> dict[str, str]:
        """This agent's own settings (environment variables), fixed at its first start, so
        that several agents share one machine: its DNS port and service addresses, and any
        free port for its embedded MQTT broker (``--mqtt`` or ``--mqtt-port`` win over it)."""
        if name not in self.agents_env:
            self.agents_env[name] = {
                "EDGEWEAVE_MESH__DNS_LISTEN": f"127.0.0.1:{free_udp_port()}",
                "EDGEWEAVE_MESH__SERVICE_CIDR": f"127.{101 + len(self.agents_env)}.0.0/16",
                "EDGEWEAVE_MESH__ADVERTISE_ADDRESS": "127.0.0.1",
                "EDGEWEAVE_DEVICES__BROKER_PORT": "0",
            }
        return self.agents_env[name]

    def start_agent(self, name: str, *extra: str, env: dict[str, str] | None = None) -> Proc:
        argv = _edgeweave("edge", "run", "--data", str(self.agent_dir(name)), *extra)
        agent_env = {**self.env, **self.agent_env(name), **(env or {})}
        proc = Proc(name, argv, self.root / "logs" / f"{name}.log", agent_env)
        proc.start()
        self.agents[name] = proc
        return proc

    def agent_status(self, name: str) -> dict[str, object]:
        path = self.agent_dir(name) / "status.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    def app_pids(self, name: str) -> dict[str, int]:
        """Running app pids on a node, from the runtime's run records."""
        pids: dict[str, int] = {}
        for record in (self.agent_dir(name) / "apps").glob("*/*/run.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid = int(json.loads(record.read_text())["pid"])
                if _alive(pid):
                    pids[f"{record.parent.parent.name}/{record.parent.name}"] = pid
        return pids

    def stop(self) -> None:
        for proc in self.agents.values():
            proc.stop()
        if self.cloud is not None:
            self.cloud.stop()
        for name in list(self.agents):
            for pid in self.app_pids(name).values():
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not running
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True
