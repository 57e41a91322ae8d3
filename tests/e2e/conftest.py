"""The end-to-end tests' fleet: a real cloud process (agents are started by each test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeweave.cli.fleet import Fleet


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A running cloud; every process the test started is stopped afterwards."""
    f = Fleet(tmp_path / "fleet")
    try:
        f.start_cloud()
        yield f
    finally:
        f.stop()
