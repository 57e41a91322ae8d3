"""`edgeweave edge run|status|join`: where the data dir comes from (no agent is started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import edgeweave.edge.agent
import edgeweave.edge.localstatus
from edgeweave.cli.main import main
from edgeweave.config.edge import EdgeSettings


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[EdgeSettings]:
    seen: list[EdgeSettings] = []

    async def fake_run(settings: EdgeSettings) -> None:
        seen.append(settings)

    monkeypatch.setattr(edgeweave.edge.agent, "run", fake_run)
    monkeypatch.delenv("EDGEWEAVE_DATA_DIR", raising=False)
    return seen


def test_run_takes_the_data_dir_from_the_settings_file(
    tmp_path: Path, started: list[EdgeSettings]
) -> None:
    file = tmp_path / "edge.yaml"
    file.write_text(f"data_dir: {tmp_path / 'from-file'}\n")
    assert main(["edge", "run", "--settings", str(file)]) == 0
    assert started[-1].data_dir == tmp_path / "from-file"


def test_run_takes_the_data_dir_from_the_environment_and_data_wins(
    tmp_path: Path, started: list[EdgeSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEWEAVE_DATA_DIR", str(tmp_path / "from-env"))
    assert main(["edge", "run"]) == 0
    assert started[-1].data_dir == tmp_path / "from-env"
    assert main(["edge", "run", "--data", str(tmp_path / "flag")]) == 0
    assert started[-1].data_dir == tmp_path / "flag"


def test_status_honours_the_environment_when_data_is_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Path] = []

    def fake_status(data_dir: Path) -> dict[str, Any]:
        asked.append(data_dir)
        return {"node": "n", "link": {"state": "x"}, "outbox": {"entries": 0}, "objects": 0}

    monkeypatch.setattr(edgeweave.edge.localstatus, "read_local_status", fake_status)
    monkeypatch.setenv("EDGEWEAVE_DATA_DIR", str(tmp_path / "from-env"))
    assert main(["edge", "status", "-o", "json"]) == 0
    monkeypatch.delenv("EDGEWEAVE_DATA_DIR")
    assert main(["edge", "status", "-o", "json"]) == 0
    assert asked == [tmp_path / "from-env", Path("data/edge")]
