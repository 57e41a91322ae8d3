"""``edgeweave config defaults`` prints every cloud setting with its default."""

from __future__ import annotations

import pytest
import yaml

from edgeweave.cli.main import main


def test_config_defaults_prints_commented_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "defaults"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    assert "max_body_bytes: 1048576" in out
    assert "port: 8443" in out
    assert "changelog_retention: 100000" in out
    assert "data_dir: data/cloud" in out
    assert "# larger bodies get 413" in out
    parsed = yaml.safe_load(out)  # comments aside, it is a valid settings file
    assert parsed["api"]["max_body_bytes"] == 1048576
    assert parsed["server"]["tls"] is True


def test_config_defaults_needs_no_client_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEWEAVE_CONFIG", "/nonexistent/admin.yaml")
    assert main(["config", "defaults"]) == 0
    assert "store:" in capsys.readouterr().out


def test_config_defaults_edge_prints_the_agent_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "defaults", "--edge"]) == 0
    out = capsys.readouterr().out
    assert "data_dir: data/edge  # node identity, local store, apps" in out
    assert "  upstream_in_flight: 4  # unacked upstream frames" in out
    parsed = yaml.safe_load(out)
    assert parsed["link"]["ping_interval_s"] == 20.0
    assert parsed["runtime"]["stop_apps_on_exit"] is False
    assert parsed["outbox"]["max_entries"] == 10_000_000
    assert "server" not in parsed
