"""Where a ConfigMap or Secret lands in an app's directory, and what it may not overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeweave.edge.runtime.spec import ObjectRef
from edgeweave.edge.runtime.workspace import AppLayout, _ref_dir


def layout(tmp_path: Path) -> AppLayout:
    root = tmp_path / "apps" / "default" / "a"
    root.mkdir(parents=True)
    return AppLayout(root)


def test_a_mount_path_places_files_under_the_app_directory(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    assert _ref_dir(lay, "config", ObjectRef("cfg", mountPath="conf/app")) == lay.root / "conf/app"
    assert _ref_dir(lay, "config", ObjectRef("cfg")) == lay.root / "config" / "cfg"


@pytest.mark.parametrize(
    "mount",
    [
        "",
        ".",
        "logs",
        "logs/x",
        "config",
        "secrets/s",
        "run.json",
        ".artifacts",
        ".installed-abc",
        "../other",
        "a/../../b",
    ],
)
def test_a_mount_path_may_not_overwrite_the_runtimes_own_files(tmp_path: Path, mount: str) -> None:
    with pytest.raises(ValueError, match="mountPath"):
        _ref_dir(layout(tmp_path), "config", ObjectRef("cfg", mountPath=mount))


def test_a_symlink_planted_by_the_app_does_not_lead_outside_its_directory(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (lay.root / "conf").symlink_to(outside)
    with pytest.raises(ValueError, match="leaves the app directory"):
        _ref_dir(lay, "config", ObjectRef("cfg", mountPath="conf"))
