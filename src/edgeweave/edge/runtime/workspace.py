"""The on-disk layout of one app instance and the environment its processes get.

``DATA/apps/<ns>/<name>/`` holds the artifacts (placed by :mod:`.artifacts`),
``config/<configmap>/<key>``, ``secrets/<secret>/<key>`` (files 0600, directories 0700),
``logs/app.log`` and ``logs/install.log``, the ``run.json`` pid file and the
``.installed-<spec hash>`` marker. A ref with ``mountPath`` is written to
``<app dir>/<mountPath>/<key>`` instead (relative to the app directory; the runtime never
writes outside it). A ref with ``envPrefix`` also exports each key as ``<prefix><KEY>``.

This module writes files only inside the app directory and never starts processes.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgeweave.edge.runtime.artifacts import RESERVED_NAMES
from edgeweave.edge.runtime.desired import DesiredApp
from edgeweave.edge.runtime.spec import ObjectRef

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NOT_ENV_CHAR = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class AppLayout:
    root: Path

    @classmethod
    def under(cls, data_dir: Path, namespace: str, name: str) -> AppLayout:
        return cls(data_dir / "apps" / namespace / name)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def app_log(self) -> Path:
        return self.logs / "app.log"

    @property
    def install_log(self) -> Path:
        return self.logs / "install.log"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    def installed_marker(self, spec_hash: str) -> Path:
        return self.root / f".installed-{spec_hash}"

    def mark_installed(self, spec_hash: str) -> None:
        for old in self.root.glob(".installed-*"):
            old.unlink(missing_ok=True)
        self.installed_marker(spec_hash).touch()


def _ref_dir(layout: AppLayout, default_parent: str, ref: ObjectRef) -> Path:
    if ref.mountPath is not None:
        parts = [p for p in ref.mountPath.split("/") if p not in ("", ".")]
        reserved = bool(parts) and (
            parts[0] in RESERVED_NAMES or parts[0].startswith(".installed-")
        )
        if not parts or reserved or ".." in parts:
            raise ValueError(
                f"mountPath {ref.mountPath!r} of {ref.name!r} would overwrite the app "
                "directory itself or the runtime's own files (logs, config, secrets, "
                "run.json, .artifacts); choose a sub-directory such as 'conf'"
            )
        target = layout.root.joinpath(*parts)
        # the app owns its directory: a symlink it planted must not lead the agent outside it
        if not target.resolve().is_relative_to(layout.root.resolve()):
            raise ValueError(
                f"mountPath {ref.mountPath!r} of {ref.name!r} leaves the app directory"
            )
        return target
    return layout.root / default_parent / ref.name


def _write_files(directory: Path, files: dict[str, bytes], *, private: bool) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700 if private else 0o755)
    if private:
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    for key, content in files.items():
        path = directory / key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        if private:
            os.chmod(path, 0o600)


def prepare(layout: AppLayout, desired: DesiredApp) -> None:
    """Create the directories and (re)write every referenced config and secret file."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    spec = desired.spec
    if spec is None:
        return
    for parent in ("config", "secrets"):
        if (layout.root / parent).exists():
            shutil.rmtree(layout.root / parent)  # drop refs the spec no longer names
    for ref in spec.configRefs:
        _write_files(_ref_dir(layout, "config", ref), desired.configs[ref.name], private=False)
    for ref in spec.secretRefs:
        _write_files(_ref_dir(layout, "secrets", ref), desired.secrets[ref.name], private=True)
    secrets_dir = layout.root / "secrets"
    if secrets_dir.exists():
        os.chmod(secrets_dir, 0o700)


def _export(prefix: str, files: dict[str, bytes]) -> dict[str, str]:
    # keys may hold '-' and '.', which env names cannot: they become '_'
    return {
        prefix + _NOT_ENV_CHAR.sub("_", key): value.decode("utf-8", "replace")
        for key, value in files.items()
    }


def environment(
    layout: AppLayout,
    desired: DesiredApp,
    node_name: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A minimal base environment + exported refs + the App's ``env`` + EDGEWEAVE_* (with
    ``extra``, the agent's own, such as the mesh's)."""
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": str(layout.root),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
    }
    spec = desired.spec
    if spec is not None:
        for ref in spec.configRefs:
            if ref.envPrefix is not None:
                env.update(_export(ref.envPrefix, desired.configs[ref.name]))
        for ref in spec.secretRefs:
            if ref.envPrefix is not None:
                env.update(_export(ref.envPrefix, desired.secrets[ref.name]))
        env.update(spec.env)
    env.update(extra or {})
    env["EDGEWEAVE_APP"] = f"{desired.namespace}/{desired.name}"
    env["EDGEWEAVE_NODE"] = node_name
    return env


def tail_lines(path: Path, count: int, *, max_bytes: int = 16384) -> list[str]:
    """The last ``count`` lines of a (log) file, reading at most ``max_bytes`` from its end."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-count:]
