"""The ``device.twin`` upstream entry both sides speak: its outbox topic and its items.

The agent builds these from twin changes and sends them through its outbox
(:mod:`edgeweave.edge.devices.reporter`); the cloud reads them back from untrusted JSON
(:mod:`edgeweave.cloud.hub.twinreport`). Plain values; must not do I/O or validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TOPIC: Final = "device.twin"


@dataclass(frozen=True, slots=True)
class Sample:
    """One reported value, for the twin history."""

    property: str
    value: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class LocalDesired:
    """A desired value set on the edge; ``base`` is the cloud's value the edge had then."""

    property: str
    value: str
    base: str | None
    timestamp_ms: int
