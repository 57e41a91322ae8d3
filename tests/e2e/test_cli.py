"""The real ``edgeweave`` command against a real ``edgeweave cloud serve``, both as subprocesses.

One cloud per module (port 0, its own data dir and HOME); each test uses its own object names.
The fixture waits for ``DATA/admin.yaml`` and ``GET /healthz`` with a deadline, and always
stops the cloud (SIGTERM, then kill) so no process outlives the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from edgeweave.client.config import load_config

pytestmark = pytest.mark.e2e

STARTUP_DEADLINE_S = 30.0
STOP_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0


def _edgeweave() -> str:
    beside = Path(sys.executable).parent / "edgeweave"
    found = str(beside) if beside.exists() else shutil.which("edgeweave")
    if not found:
        pytest.fail("the edgeweave console script is not installed (pip install -e .)")
    return found


def _wait_ready(proc: subprocess.Popen[bytes], admin: Path, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the cloud exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if admin.is_file():
            try:
                config = load_config(str(admin), {})
                answer = httpx.get(
                    f"{config.server}/healthz", verify=config.ssl_context(), timeout=2.0
                )
                if answer.status_code == 200:
                    return
            except Exception:  # half-written file, or not listening yet
                pass
        time.sleep(0.05)
    pytest.fail(f"the cloud was not ready in {STARTUP_DEADLINE_S}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    out = {k: v for k, v in os.environ.items() if not k.startswith("EDGEWEAVE_")}
    out.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), NO_COLOR="1")
    return out


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Path]:
    """Start ``edgeweave cloud serve``; yield the path of its admin.yaml."""
    data = tmp_path_factory.mktemp("cloud")
    log = data.parent / f"{data.name}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [_edgeweave(), "cloud", "serve", "--data", str(data), "--port", "0", "--hub-port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_ready(proc, data / "admin.yaml", log)
        yield data / "admin.yaml"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def ew(
    env: dict[str, str], config: Path | None, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [_edgeweave(), *(["--config", str(config)] if config else []), *args]
    return subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=COMMAND_TIMEOUT_S,
    )


def app_manifest(name: str, run: str = "[python3, counter.py]", tier: str = "edge") -> str:
    return f"""\
apiVersion: edgeweave.io/v1
kind: App
metadata:
  name: {name}
  labels: {{tier: {tier}}}
spec:
  nodeSelector: {{role: camera}}
  lifecycle:
    run: {run}
  env: {{LOG_LEVEL: info}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_apply_creates_then_unchanged_then_configured(
    cloud: Path, env: dict[str, str], tmp_path: Path
) -> None:
    path = write(tmp_path, "app.yaml", app_manifest("apply-a"))
    first = ew(env, cloud, "apply", "-f", str(path))
    assert (first.returncode, first.stdout) == (0, "app.edgeweave.io/apply-a created\n"), first
    again = ew(env, cloud, "apply", "-f", str(path))
    assert again.stdout == "app.edgeweave.io/apply-a unchanged\n", again
    path.write_text(app_manifest("apply-a", run="[python3, counter.py, --fast]"))
    changed = ew(env, cloud, "apply", "-f", str(path))
    assert changed.stdout == "app.edgeweave.io/apply-a configured\n", changed
    shown = json.loads(ew(env, cloud, "get", "app", "apply-a", "-o", "json").stdout)
    assert shown["spec"]["lifecycle"]["run"][-1] == "--fast"


def test_apply_a_directory_and_stdin(cloud: Path, env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", app_manifest("dir-b"))
    write(tmp_path, "a.json", json.dumps(yaml.safe_load(app_manifest("dir-a"))))
    listed = ew(env, cloud, "apply", "-f", str(tmp_path))
    assert listed.stdout.splitlines() == [
        "app.edgeweave.io/dir-a created",
        "app.edgeweave.io/dir-b created",
    ], listed
    piped = ew(env, cloud, "apply", "-f", "-", stdin=app_manifest("dir-a"))
    assert piped.stdout == "app.edgeweave.io/dir-a unchanged\n", piped


def test_get_in_every_output_format(cloud: Path, env: dict[str, str], tmp_path: Path) -> None:
    ew(env, cloud, "apply", "-f", str(write(tmp_path, "a.yaml", app_manifest("fmt-a"))))
    table = ew(env, cloud, "get", "apps")
    assert table.returncode == 0, table
    header, *rows = table.stdout.splitlines()
    assert header.split()[0] == "NAME" and header.split()[-1] == "AGE"
    assert any(r.split()[0] == "fmt-a" for r in rows)
    wide = ew(env, cloud, "get", "apps", "-o", "wide")
    assert wide.returncode == 0 and "fmt-a" in wide.stdout, wide
    assert len(wide.stdout.splitlines()[0].split()) >= len(header.split())
    as_json = json.loads(ew(env, cloud, "get", "apps", "-o", "json").stdout)
    assert as_json["kind"] == "List"
    assert "fmt-a" in [i["metadata"]["name"] for i in as_json["items"]]
    one = yaml.safe_load(ew(env, cloud, "get", "app", "fmt-a", "-o", "yaml").stdout)
    assert (one["kind"], one["metadata"]["name"]) == ("App", "fmt-a")
    every = ew(env, cloud, "get", "apps", "-A")
    assert every.stdout.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"], every
    nodes = ew(env, cloud, "get", "nodes")
    assert nodes.returncode == 0, nodes


def test_get_with_a_label_selector(cloud: Path, env: dict[str, str], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two.yaml",
        app_manifest("sel-front", tier="front") + "---\n" + app_manifest("sel-back", tier="back"),
    )
    assert ew(env, cloud, "apply", "-f", str(path)).returncode == 0
    found = ew(env, cloud, "get", "apps", "-l", "tier=front", "-o", "name")
    assert found.stdout == "app.edgeweave.io/sel-front\n", found
    nothing = ew(env, cloud, "get", "apps", "-l", "tier=nowhere")
    assert (nothing.returncode, nothing.stdout) == (0, ""), nothing
    assert "No apps found" in nothing.stderr


def test_describe_shows_metadata_and_spec(cloud: Path, env: dict[str, str], tmp_path: Path) -> None:
    ew(env, cloud, "apply", "-f", str(write(tmp_path, "a.yaml", app_manifest("desc-a"))))
    shown = ew(env, cloud, "describe", "app", "desc-a")
    assert shown.returncode == 0, shown
    assert "Name:         desc-a" in shown.stdout
    assert "Labels:       tier=edge" in shown.stdout
    assert "Spec:\n" in shown.stdout and "- counter.py" in shown.stdout


def test_delete_by_name_and_by_file(cloud: Path, env: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", app_manifest("del-a") + "---\n" + app_manifest("del-b"))
    ew(env, cloud, "apply", "-f", str(path))
    gone = ew(env, cloud, "delete", "app", "del-a")
    assert (gone.returncode, gone.stdout) == (0, "app.edgeweave.io/del-a deleted\n"), gone
    again = ew(env, cloud, "delete", "app", "del-a")
    assert again.returncode == 1 and again.stderr.startswith("error: "), again
    by_file = ew(env, cloud, "delete", "-f", str(path), "--ignore-not-found")
    assert (by_file.returncode, by_file.stdout) == (0, "app.edgeweave.io/del-b deleted\n")
    missing = ew(env, cloud, "get", "app", "del-b")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr, missing


def test_bad_yaml_exits_1_with_file_and_line(
    cloud: Path, env: dict[str, str], tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.yaml", "apiVersion: edgeweave.io/v1\nkind: App\nmetadata: a: b\n")
    result = ew(env, cloud, "apply", "-f", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {path}:3: mapping values are not allowed"), result
    assert "Traceback" not in result.stderr


def test_unknown_kind_names_the_known_kinds(cloud: Path, env: dict[str, str]) -> None:
    result = ew(env, cloud, "get", "widgets")
    assert result.returncode == 1
    assert result.stderr.startswith('error: unknown kind "widgets"; known kinds: ')
    assert "apps" in result.stderr and "nodes" in result.stderr


def test_schema_error_names_the_field_path(
    cloud: Path, env: dict[str, str], tmp_path: Path
) -> None:
    bad = app_manifest("schema-x", run='"python3 counter.py"')
    path = write(tmp_path, "x.yaml", bad + "---\n" + app_manifest("schema-ok"))
    result = ew(env, cloud, "apply", "-f", str(path))
    assert result.returncode == 1, result
    assert result.stderr.startswith(f"error: {path}: App default/schema-x: "), result
    assert "spec.lifecycle.run" in result.stderr
    assert result.stdout == "app.edgeweave.io/schema-ok created\n"  # the rest still applied


def test_wrong_token_is_a_clear_auth_error(
    cloud: Path, env: dict[str, str], tmp_path: Path
) -> None:
    config = yaml.safe_load(cloud.read_text())
    config["token"] = "ew_wrong"
    wrong = write(tmp_path, "wrong.yaml", yaml.safe_dump(config))
    result = ew(env, wrong, "get", "apps")
    assert result.returncode == 1
    assert "401" in result.stderr and "Unauthorized" in result.stderr, result
    assert "Traceback" not in result.stderr


def test_missing_config_says_how_to_get_one(env: dict[str, str], tmp_path: Path) -> None:
    # a fresh HOME: the module's cloud may have written ~/.config/edgeweave/config.yaml
    bare = {**env, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    result = ew(bare, None, "get", "apps")
    assert result.returncode == 1
    assert "edgeweave cloud serve" in result.stderr and "--config" in result.stderr, result


def test_version_prints_client_and_server(cloud: Path, env: dict[str, str]) -> None:
    result = ew(env, cloud, "version")
    assert result.returncode == 0, result
    assert result.stdout.startswith("Client Version: ")
    assert "Server Version: " in result.stdout
    bare = {**env, "HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"}
    offline = ew(bare, None, "version")
    assert offline.returncode == 0 and offline.stdout.startswith("Client Version: ")
