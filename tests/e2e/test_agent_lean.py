"""A running agent with no devices and no pipelines stays lean: the device side (MQTT,
amqtt and the YAML parser it loads) and the pipeline engine (pydantic) are not loaded.

Checked on the real process through the shared libraries it has mapped, since their
extension modules are what a loaded package leaves behind in ``/proc/PID/maps``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeweave.cli.fleet import Fleet, wait_until

pytestmark = pytest.mark.e2e
HEAVY = ("pydantic_core", "_yaml", "_cffi_backend")


def _connected(fleet: Fleet) -> bool:
    link = fleet.agent_status("lean").get("link")
    return isinstance(link, dict) and link.get("state") == "connected"


def test_an_agent_without_devices_or_pipelines_loads_neither(fleet: Fleet) -> None:
    fleet.join("lean")
    agent = fleet.start_agent("lean")
    wait_until(lambda: _connected(fleet), 60, "the agent connected")
    maps = Path(f"/proc/{agent.pid}/maps").read_text()
    assert [name for name in HEAVY if name in maps] == []
