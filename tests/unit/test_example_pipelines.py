"""The example pipelines' user code (examples/pipelines), on the examples' own generated data:
the smart-building Filter's OpenCV predicate and occupancy report, the industrial inference
(the batched protocol) with the checked-in model.

The code is taken from the spec files as a node runs it (each transform is ``python3 -c
SCRIPT``) and run in this process with what a node gives it — the datum's environment, stdin
lines, the exit code read from ``SystemExit`` — so no process is started per frame.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"
BUILDING, INDUSTRIAL = EXAMPLES / "smart-building", EXAMPLES / "industrial"
WITH_PEOPLE = {  # what frames.py draws, written out: frame -> people in it
    "lobby-0820": 1, "lobby-0900": 2, "lobby-0920": 1, "lobby-1020": 1,
    "office-0900": 1, "office-0920": 2, "office-1020": 2,
}  # fmt: skip


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spec_of(example: Path, name: str) -> dict[str, Any]:
    docs = list(yaml.safe_load_all((example / "pipelines.yaml").read_text()))
    [found] = [d for d in docs if d["pipeline"]["name"] == name]
    return dict(found)


def run(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch, env: dict[str, str], stdin: str = ""
) -> int:
    """The spec's ``python3 -c`` script with the transform's env plus ``env``; its exit code."""
    cmd = spec["transform"]["cmd"]
    assert cmd[:2] == ["python3", "-c"]
    for key, value in {**spec["transform"].get("env", {}), **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        exec(compile(cmd[2], spec["pipeline"]["name"], "exec"), {"__name__": "__main__"})
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every frame of both cameras, by name (``lobby-0820``)."""
    out = tmp_path_factory.mktemp("frames")
    load(BUILDING / "frames.py").main(out, ["lobby", "office"])
    return {p.stem: p for p in sorted(out.glob("*/*.png"))}


def test_the_frames_are_the_same_every_run(frames: dict[str, Path], tmp_path: Path) -> None:
    generator = load(BUILDING / "frames.py")
    generator.main(tmp_path, ["lobby", "office"])
    again = {p.stem: p.read_bytes() for p in tmp_path.glob("*/*.png")}
    assert again == {name: p.read_bytes() for name, p in frames.items()}
    assert len(frames) == 16
    assert {n: generator.people_in(*n.split("-")) for n in frames} == {
        n: WITH_PEOPLE.get(n, 0) for n in frames
    }


def test_the_filter_passes_the_frames_with_people_and_drops_the_rest(
    frames: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    people = spec_of(BUILDING, "people")
    assert people["pattern"] == {"filter": {"dropCodes": [1]}}
    codes = {name: run(people, monkeypatch, {"frames": str(p)}) for name, p in frames.items()}
    assert {name for name, code in codes.items() if code == 0} == set(WITH_PEOPLE)
    assert {code for name, code in codes.items() if name not in WITH_PEOPLE} == {1}
    # the distractions were seen and judged too small: the fly is a blob under MIN_AREA
    assert "lobby-0840.png: blobs [14], 0 person-sized" in capsys.readouterr().out


def test_a_smaller_min_area_lets_the_fly_through(
    frames: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    people = spec_of(BUILDING, "people")
    fly = {"frames": str(frames["lobby-0840"])}
    assert run(people, monkeypatch, fly) == 1
    assert run(people, monkeypatch, {**fly, "MIN_AREA": "10"}) == 0


def test_a_file_that_is_no_image_fails_the_datum_instead_of_being_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    assert run(spec_of(BUILDING, "people"), monkeypatch, {"frames": str(notes)}) == 2


def test_the_report_gives_frames_and_peak_occupancy_per_camera_and_hour(
    frames: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = tmp_path / "people-frames"  # the Merger's merged view: /<node>/<frame>
    for node, camera in (("edge-1", "lobby"), ("edge-2", "office")):
        (merged / node).mkdir(parents=True)
        for name in (n for n in WITH_PEOPLE if n.startswith(camera)):
            (merged / node / f"{name}.png").write_bytes(frames[name].read_bytes())
    (tmp_path / "out").mkdir()
    env = {"PFS": str(tmp_path), "people-frames": str(merged)}
    assert run(spec_of(BUILDING, "occupancy"), monkeypatch, env) == 0
    assert (tmp_path / "out" / "occupancy.txt").read_text() == (
        "NODE    CAMERA  HOUR   FRAMES  PEAK  AT\n"
        "edge-1  lobby   08:00  1       1     08:20\n"
        "edge-1  lobby   09:00  2       2     09:00 09:20\n"
        "edge-1  lobby   10:00  1       1     10:20\n"
        "edge-2  office  09:00  2       2     09:00 09:20\n"
        "edge-2  office  10:00  1       2     10:20\n"
    )


def test_the_inference_flags_exactly_the_faulty_minutes_and_loads_the_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    machines = ["press-1", "press-2", "pump-1", "pump-2", "fan-1"]
    load(INDUSTRIAL / "readings.py").main(tmp_path / "readings", machines)
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.json").write_bytes((INDUSTRIAL / "model.json").read_bytes())
    lines = ""
    for machine in machines:  # the batch protocol: one JSON line per datum
        root = tmp_path / "datums" / machine
        (root / "out").mkdir(parents=True)
        datum = {"PFS": str(root), "readings": str(tmp_path / "readings" / f"{machine}.csv")}
        lines += json.dumps({**datum, "models": str(models), "PACH_DATUM_ID": machine}) + "\n"
    spec = spec_of(INDUSTRIAL, "anomalies")
    assert spec["datum_batching"] is True
    capsys.readouterr()
    assert run(spec, monkeypatch, {}, stdin=lines) == 0
    out = capsys.readouterr().out.splitlines()
    assert out.count("ok") == len(machines)
    assert [line for line in out if "loaded model" in line] == ["loaded model machine-health v1"]
    flagged = {}
    for machine in machines:
        result = json.loads((tmp_path / "datums" / machine / "out" / f"{machine}.json").read_text())
        assert (result["readings"], result["model"]) == (60, "machine-health v1")
        flagged[machine] = [a["time"] for a in result["anomalies"]]
    assert flagged == {
        "press-1": ["08:17", "08:41"],
        "press-2": [],
        "pump-1": ["08:08"],
        "pump-2": ["08:29", "08:30", "08:52"],
        "fan-1": ["08:44"],
    }


def test_the_demo_checks_for_the_examples_before_starting_anything(tmp_path: Path) -> None:
    from edgeweave.cli.demo import check_examples
    from edgeweave.errors import ConfigError

    check_examples(EXAMPLES)  # the examples and numpy and OpenCV (the vision extra) are here
    (tmp_path / "smart-building").mkdir()
    with pytest.raises(ConfigError, match=r"no smart-building/pipelines.yaml in "):
        check_examples(tmp_path)
