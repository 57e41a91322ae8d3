"""The typed HTTP client of edgeweave's public API (docs/api.md).

Objects travel as plain JSON dicts: this package must not import pydantic or the kind
registry, so that a CLI command that only lists objects starts fast. It imports only
``edgeweave.errors``, ``edgeweave.models.selectors``, the standard library, httpx and yaml.
httpx is imported only by the modules that send requests (:mod:`.http`, :mod:`.async_http`);
nothing here connects or reads a file at import time.

Public names: :class:`Client`, :class:`AsyncClient` (import them from their modules or from
here), :func:`load_config`, :class:`ClientConfig`, :class:`KindRef`, :class:`Discovery`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeweave.client.config import ClientConfig, load_config
from edgeweave.client.discovery import Discovery, KindRef

if TYPE_CHECKING:
    from edgeweave.client.async_http import AsyncClient
    from edgeweave.client.http import Client

__all__ = ["AsyncClient", "Client", "ClientConfig", "Discovery", "KindRef", "load_config"]


def __getattr__(name: str) -> Any:
    # the clients pull in httpx; load them only when asked for
    if name == "Client":
        from edgeweave.client.http import Client

        return Client
    if name == "AsyncClient":
        from edgeweave.client.async_http import AsyncClient

        return AsyncClient
    raise AttributeError(name)
