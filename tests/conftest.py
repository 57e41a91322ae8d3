"""Shared test fixtures: leak checks, service discovery, temporary data dirs.

- An async test that leaves an asyncio task running fails (kopf's habit).
- A test that leaves a child process running fails.
- External services (PostgreSQL, mosquitto) are skipped when absent unless
  EDGEWEAVE_REQUIRE_SERVICES=1, which CI sets, turns absence into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from procs import live_processes

PG_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _children() -> set[int]:
    me = os.getpid()
    return {proc.pid for proc in live_processes() if proc.ppid == me}


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    before = _children()
    yield
    leaked = _children() - before
    if leaked:
        for pid in leaked:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        pytest.fail(f"test left child processes running: {sorted(leaked)}")


@pytest.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    leaked = [
        t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()
    ]
    if leaked:
        for t in leaked:
            t.cancel()
        pytest.fail(f"test left asyncio tasks running: {[t.get_name() for t in leaked]}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and asyncio.iscoroutinefunction(fn):
            item.fixturenames.insert(0, "no_leaked_tasks")  # type: ignore[attr-defined]


def services_required() -> bool:
    return os.environ.get("EDGEWEAVE_REQUIRE_SERVICES", "") not in ("", "0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under EDGEWEAVE_REQUIRE_SERVICES, fail) when the service is not listening."""
    if _reachable(host, port):
        return
    msg = f"{name} not reachable at {host}:{port}"
    if services_required():
        pytest.fail(msg + " and EDGEWEAVE_REQUIRE_SERVICES is set")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("EDGEWEAVE_TEST_PG", PG_URL_DEFAULT)
    parts = urlsplit(url)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return url


@pytest.fixture(scope="session")
def mosquitto_url() -> str:
    """The external MQTT broker (mosquitto) the device tests use besides the embedded one."""
    url = os.environ.get("EDGEWEAVE_TEST_MQTT", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    require_service("mosquitto", parts.hostname or "127.0.0.1", parts.port or 1883)
    return url
