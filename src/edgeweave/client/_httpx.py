"""httpx, imported without its optional command-line tool.

``import httpx`` also imports ``httpx._main`` (its CLI), which pulls in click and rich when
they are installed — about 40 ms, a sixth of the startup budget of ``edgeweave get``. httpx
already copes with that module being unavailable, so we make it unavailable for the duration
of the first import. Only the client's adapter modules import httpx, through here.
"""

from __future__ import annotations

import sys


def _import_httpx() -> None:
    if "httpx" in sys.modules:
        return
    blocked = "httpx._main" not in sys.modules
    if blocked:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]  # makes the import fail
    try:
        import httpx  # noqa: F401
    finally:
        if blocked:
            del sys.modules["httpx._main"]


_import_httpx()

import httpx  # noqa: E402

__all__ = ["httpx"]
