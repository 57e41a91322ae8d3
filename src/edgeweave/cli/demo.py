"""`edgeweave demo`: a cloud on embedded defaults with the sample manifests applied.

Runs the real commands a user would: `cloud serve` as a child process (SQLite, TLS, a free
port, its own data dir), then `apply -f examples/` and a few `get`s through the public API,
and prints how to explore. It stops after ``--duration`` seconds, or on Ctrl-C, and always
stops the processes it started.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeweave.errors import ConfigError, EdgeweaveError

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="start a demo cloud and apply the sample manifests")
    p.add_argument("--data", type=Path, default=None, help="data dir (default: a temporary one)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop by itself after S seconds (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--examples",
        type=Path,
        default=None,
        metavar="DIR",
        help="manifests to apply (default: the examples/ folder of this checkout)",
    )
    p.set_defaults(func=run)


def default_examples_dir() -> Path:
    import edgeweave

    return Path(edgeweave.__file__).resolve().parents[2] / "examples"


def run(args: argparse.Namespace) -> int:
    examples = args.examples or default_examples_dir()
    if not examples.is_dir():
        raise ConfigError(f"no examples folder at {examples}; pass --examples DIR")
    with contextlib.ExitStack() as stack:
        if args.data is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeweave-demo-")))
        else:
            data = args.data
        cloud_dir = data / "cloud"
        print(f"==> starting the cloud (data in {cloud_dir})", flush=True)
        admin = stack.enter_context(_cloud_process(cloud_dir))
        _step(f"applying the sample manifests in {examples}", ["apply", "-f", str(examples)], admin)
        _step(
            "device models (KubeEdge devices.kubeedge.io/v1beta1, applied unchanged)",
            ["get", "devicemodels"],
            admin,
        )
        _step("devices, desired vs reported", ["get", "devices", "-o", "wide"], admin)
        _step("apps and services", ["get", "apps"], admin)
        _step("", ["get", "services"], admin)
        print(
            "\n==> the cloud is running. In another terminal:\n"
            f"    export EDGEWEAVE_CONFIG={admin}\n"
            "    .venv/bin/edgeweave get devices -o yaml\n"
            "    .venv/bin/edgeweave describe device thermostat-1\n"
            "    .venv/bin/edgeweave get apps --watch\n",
            flush=True,
        )
        _wait(args.duration)
        print("==> stopping", flush=True)
    return 0


def _step(title: str, argv: list[str], admin: Path) -> None:
    from edgeweave.cli.main import main

    if title:
        print(f"\n==> {title}", flush=True)
    print(f"$ edgeweave {' '.join(argv)}", flush=True)
    code = main(["--config", str(admin), *argv])
    if code != 0:
        raise DemoFailed(f"`edgeweave {' '.join(argv)}` exited {code}")


class DemoFailed(EdgeweaveError):
    reason = "DemoFailed"


@contextlib.contextmanager
def _cloud_process(data_dir: Path) -> Iterator[Path]:
    admin = data_dir / "admin.yaml"
    admin.unlink(missing_ok=True)
    log_path = data_dir.parent / "cloud.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "edgeweave",
        "cloud",
        "serve",
        "--data",
        str(data_dir),
        "--port",
        "0",
        "--no-user-config",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, admin, log_path)
        yield admin
    finally:
        _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], admin: Path, log_path: Path) -> None:
    from edgeweave.client.config import load_config
    from edgeweave.client.http import Client

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoFailed(f"the cloud exited with {proc.returncode}; see {log_path}")
        if admin.exists():
            with contextlib.suppress(EdgeweaveError), Client(load_config(str(admin))) as client:
                client.version()
                return
        time.sleep(0.05)  # polling a child process's readiness; no event to wait on
    raise DemoFailed(f"the cloud did not come up within {STARTUP_TIMEOUT_S:.0f} s; see {log_path}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(duration: float | None) -> None:
    done = threading.Event()
    try:
        done.wait(duration)  # None: until Ctrl-C
    except KeyboardInterrupt:
        print()
