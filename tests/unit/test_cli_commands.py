"""The commands against an in-memory API (httpx.MockTransport): no sockets, no server."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import edgeweave.cli.context
from edgeweave.cli.main import main
from edgeweave.client.config import ClientConfig
from edgeweave.client.http import Client

KINDS = [
    {
        "kind": "App",
        "group": "edgeweave.io",
        "version": "v1",
        "plural": "apps",
        "singular": "app",
        "shortNames": [],
        "namespaced": True,
        "columns": [{"name": "Restart", "jsonPath": ".spec.restartPolicy"}],
    },
    {
        "kind": "Node",
        "group": "edgeweave.io",
        "version": "v1",
        "plural": "nodes",
        "singular": "node",
        "shortNames": ["no"],
        "namespaced": False,
    },
]


class FakeAPI:
    """Just enough of docs/api.md: CRUD, a default the server fills in, one validation rule."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        if parts == ["apis"]:
            return httpx.Response(200, json={"kinds": KINDS})
        if parts == ["api", "v1", "events"]:
            event = {
                "type": "Normal",
                "reason": "Started",
                "node": "edge-1",
                "time": 0,
                "message": "pid 42",
                "object": dict(request.url.params),
            }
            return httpx.Response(200, json={"kind": "EventList", "items": [event]})
        ns = parts[4] if len(parts) > 4 and parts[3] == "namespaces" else ""
        rest = parts[5:] if ns else parts[3:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else "")
        key = (plural, ns, name)
        if request.method == "GET" and not name:
            items = [o for (p, n, _), o in sorted(self.objects.items()) if p == plural and n == ns]
            return httpx.Response(200, json={"kind": "List", "metadata": {}, "items": items})
        if request.method in ("POST", "PUT"):
            obj = json.loads(request.content)
            run = (obj.get("spec") or {}).get("lifecycle", {}).get("run")
            if plural == "apps" and not isinstance(run, list):
                return _error(
                    422,
                    "Invalid",
                    "App is invalid",
                    field="spec.lifecycle.run",
                    errors=["spec.lifecycle.run: must be a list of strings"],
                )
            key = (plural, ns, obj["metadata"]["name"])
            if request.method == "POST" and key in self.objects:
                return _error(409, "AlreadyExists", "exists")
            self.version += 1
            obj["spec"].setdefault("restartPolicy", "Always")
            obj["metadata"].update(
                resourceVersion=str(self.version), creationTimestamp="2024-01-01T00:00:00Z"
            )
            self.objects[key] = obj
            return httpx.Response(201 if request.method == "POST" else 200, json=obj)
        if key not in self.objects:
            return _error(404, "NotFound", f"{plural} {ns}/{name} not found")
        if request.method == "DELETE":
            return httpx.Response(200, json=self.objects.pop(key))
        return httpx.Response(200, json=self.objects[key])


def _error(code: int, reason: str, message: str, **details: Any) -> httpx.Response:
    return httpx.Response(
        code,
        json={
            "kind": "Status",
            "code": code,
            "reason": reason,
            "message": message,
            "details": details,
        },
    )


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    fake = FakeAPI()
    config = ClientConfig(server="https://fake.test", token="t")

    def open_client(args: Any) -> Client:
        return Client(config, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(edgeweave.cli.context, "open_client", open_client)
    for module in ("apply", "get", "delete", "describe"):
        monkeypatch.setattr(f"edgeweave.cli.{module}.open_client", open_client)
    yield fake


APP = """\
apiVersion: edgeweave.io/v1
kind: App
metadata: {name: counter, labels: {tier: edge}}
spec:
  lifecycle: {run: [python3, counter.py]}
"""


def test_apply_creates_then_is_unchanged_then_configured(
    api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    assert main(["apply", "-f", str(path)]) == 0
    assert capsys.readouterr().out == "app.edgeweave.io/counter created\n"
    assert main(["apply", "-f", str(path)]) == 0
    assert capsys.readouterr().out == "app.edgeweave.io/counter unchanged\n"
    path.write_text(APP.replace("counter.py", "counter2.py"))
    assert main(["apply", "-f", str(path)]) == 0
    assert capsys.readouterr().out == "app.edgeweave.io/counter configured\n"


def test_apply_reports_field_errors_and_continues(
    api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.yaml"
    bad = APP.replace("counter", "x").replace("run: [python3, x.py]", "run: python3 x.py")
    path.write_text(bad + "---\n" + APP)
    assert main(["apply", "-f", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "app.edgeweave.io/counter created\n"
    assert err == (f"error: {path}: App default/x: spec.lifecycle.run: must be a list of strings\n")


def test_get_describe_delete(
    api: FakeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    main(["apply", "-f", str(path)])
    capsys.readouterr()
    assert main(["get", "apps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "RESTART", "AGE"]
    assert lines[1].split()[:2] == ["counter", "Always"]
    assert main(["get", "app", "counter", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["name"] == "counter"
    assert main(["describe", "app", "counter"]) == 0
    text = capsys.readouterr().out
    assert "Labels:       tier=edge" in text
    assert "    run:\n    - python3" in text
    event_line = next(line for line in text.splitlines() if "Started" in line)
    assert event_line.split() == ["Normal", "Started", event_line.split()[2], "edge-1", "pid", "42"]
    assert main(["delete", "app", "counter"]) == 0
    assert capsys.readouterr().out == "app.edgeweave.io/counter deleted\n"
    assert main(["delete", "app", "counter"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["delete", "app", "counter", "--ignore-not-found"]) == 0
    assert main(["delete", "-f", str(path), "--ignore-not-found"]) == 0


def test_unknown_kind_and_usage_errors(api: FakeAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "widgets"]) == 1
    assert capsys.readouterr().err == 'error: unknown kind "widgets"; known kinds: apps, nodes\n'
    assert main(["delete", "app"]) == 2
    assert main(["get"]) == 2


def test_building_the_parser_imports_no_heavy_module() -> None:
    """Every command module is imported to build the parser, on every CLI start: what they
    import at module level is paid by `edgeweave get nodes` too."""
    import subprocess
    import sys

    code = (
        "import sys; from edgeweave.cli import main; main.build_parser(); "
        "print(' '.join(m for m in ('asyncio', 'httpx', 'pydantic', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_command_table_names_what_each_module_registers() -> None:
    import argparse

    from edgeweave.cli import main as cli_main

    for module in cli_main.COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).add_parser(sub)
        registered = set(sub.choices)
        assert registered == {w for w, m in cli_main.COMMANDS.items() if m == module}, module


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["get", "nodes"], "get"),
        (["--config", "c.yaml", "-n", "prod", "get", "apps"], "get"),
        (["-n", "prod", "datum", "list", "j1"], "datum"),
        (["--help"], None),
        (["--config"], None),
        ([], None),
    ],
)
def test_the_command_word_is_found_after_the_global_options(
    argv: list[str], word: str | None
) -> None:
    from edgeweave.cli.main import command_of

    assert command_of(argv) == word


def test_a_command_builds_only_its_own_parser_and_help_builds_all() -> None:
    from edgeweave.cli.main import COMMANDS, build_parser

    def words(parser: Any) -> set[str]:
        (action,) = [a for a in parser._actions if a.dest == "command"]
        return set(action.choices)

    assert words(build_parser("get")) == {"get"}
    assert words(build_parser("datum")) == {"job", "datum"}
    assert words(build_parser(None)) == words(build_parser("no-such")) == set(COMMANDS)
