"""The edge agent's settings: pydantic-free dataclasses, layered file < env < overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeweave.config.edge import (
    EdgeSettings,
    LinkSettings,
    OutboxSettings,
    RuntimeSettings,
    load_edge_settings,
)
from edgeweave.errors import ConfigError


def test_defaults_are_those_of_the_sections() -> None:
    s = load_edge_settings(env={})
    assert s == EdgeSettings()
    assert s.data_dir == Path("data/edge")
    assert s.link == LinkSettings()
    assert s.link.max_frame_bytes == 1 << 20
    assert s.link.upstream_in_flight == 4
    assert s.outbox == OutboxSettings(max_entries=10_000_000, max_bytes=1 << 30)
    assert s.runtime == RuntimeSettings()
    assert s.runtime.stop_apps_on_exit is False


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    file = tmp_path / "edge.yaml"
    file.write_text(
        "data_dir: /srv/edge\n"
        "link: {ping_interval_s: 5, upstream_in_flight: 8}\n"
        "runtime: {log_keep: 7}\n"
    )
    env = {
        "EDGEWEAVE_LINK__UPSTREAM_IN_FLIGHT": "16",
        "EDGEWEAVE_RUNTIME__STOP_APPS_ON_EXIT": "yes",
        "EDGEWEAVE_OUTBOX__MAX_BYTES": "2097152",
        "EDGEWEAVE_API__MAX_BODY_BYTES": "10",  # a cloud section: not the agent's business
        "EDGEWEAVE_CONFIG": "/somewhere/admin.yaml",  # not a setting
    }
    s = load_edge_settings(
        file=file,
        env=env,
        overrides={"runtime.log_keep": 2, "data_dir": tmp_path, "link.open_timeout_s": None},
    )
    assert s.data_dir == tmp_path
    assert s.link.ping_interval_s == 5.0 and isinstance(s.link.ping_interval_s, float)
    assert s.link.upstream_in_flight == 16
    assert s.link.open_timeout_s == 10.0  # a None override falls through
    assert s.runtime.stop_apps_on_exit is True
    assert s.runtime.log_keep == 2
    assert s.outbox.max_bytes == 2 * 1024 * 1024


def test_env_strings_are_converted_to_the_field_types() -> None:
    s = load_edge_settings(
        env={
            "EDGEWEAVE_DATA_DIR": "/var/lib/edgeweave",
            "EDGEWEAVE_LINK__BACKOFF_CAP_S": " 12.5 ",
            "EDGEWEAVE_LINK__MAX_FRAME_BYTES": "65536",
            "EDGEWEAVE_RUNTIME__STOP_APPS_ON_EXIT": "False",
        }
    )
    assert s.data_dir == Path("/var/lib/edgeweave")
    assert s.link.backoff_cap_s == 12.5
    assert s.link.max_frame_bytes == 65536
    assert s.runtime.stop_apps_on_exit is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGEWEAVE_LINK__PING_INTERVAL_S": "0"}, "link.ping_interval_s: must be greater than 0"),
        (
            {"EDGEWEAVE_LINK__MAX_FRAME_BYTES": "100"},
            "link.max_frame_bytes: must be greater than or equal to 4096",
        ),
        ({"EDGEWEAVE_OUTBOX__MAX_ENTRIES": "lots"}, "outbox.max_entries: must be an integer"),
        ({"EDGEWEAVE_LINK__OPEN_TIMEOUT_S": "nan"}, "link.open_timeout_s: must be a finite number"),
        (
            {"EDGEWEAVE_RUNTIME__STOP_APPS_ON_EXIT": "maybe"},
            "runtime.stop_apps_on_exit: must be a boolean",
        ),
        ({"EDGEWEAVE_LINK__PING_INTERVALS": "5"}, "link.ping_intervals: unknown setting"),
        (
            {"EDGEWEAVE_PIPELINES__MOUNT_NAMESPACE": "on"},
            "pipelines.mount_namespace: must be one of auto, off (got 'on')",
        ),
    ],
)
def test_bad_values_name_the_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid settings: ") as info:
        load_edge_settings(env=env)
    assert message in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    file = tmp_path / "edge.yaml"
    file.write_text("link: 3\nruntime: {log_keep: 0, colour: blue}\nextra: 1\n")
    with pytest.raises(ConfigError) as info:
        load_edge_settings(file=file, env={})
    text = str(info.value)
    for part in ("link: must be a mapping", "runtime.log_keep", "runtime.colour", "extra"):
        assert part in text


def test_bad_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_edge_settings(file=tmp_path / "missing.yaml", env={})
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_edge_settings(file=tmp_path / "list.yaml", env={})
    (tmp_path / "bad.yaml").write_text("link: {\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_edge_settings(file=tmp_path / "bad.yaml", env={})


def test_sections_are_frozen_and_check_their_ranges() -> None:
    with pytest.raises(ConfigError, match="upstream_in_flight"):
        LinkSettings(upstream_in_flight=0)
    s = LinkSettings(upstream_in_flight=2)
    with pytest.raises(AttributeError):
        s.upstream_in_flight = 3  # type: ignore[misc]


def test_the_agent_loads_neither_pydantic_nor_yaml_nor_cryptography() -> None:
    code = (
        "import sys, edgeweave.edge.agent\n"
        "from edgeweave.config.edge import load_edge_settings\n"
        "load_edge_settings(env={})\n"
        "loaded = [m for m in ('pydantic', 'yaml', 'cryptography', 'httpx') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
