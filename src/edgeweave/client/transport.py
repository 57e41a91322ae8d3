"""What both clients share about httpx: settings, headers, and translating its errors.

The only client modules that touch httpx are this one, :mod:`.http` and :mod:`.async_http`.
httpx's exceptions never leave them: :func:`translated_errors` turns a transport failure into
an :class:`APIError` that says which cloud could not be reached and why, ``raise ... from e``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import edgeweave
from edgeweave.client._httpx import httpx
from edgeweave.client.config import ClientConfig
from edgeweave.client.requests import Request
from edgeweave.errors import APIError

DEFAULT_TIMEOUT_S = 10.0
# a watch gets a bookmark every 15 s by default; silence for this long means a dead stream
DEFAULT_WATCH_IDLE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Settings:
    timeout_s: float = DEFAULT_TIMEOUT_S
    watch_idle_timeout_s: float = DEFAULT_WATCH_IDLE_TIMEOUT_S
    max_event_bytes: int = 4 * 1024 * 1024


def client_kwargs(config: ClientConfig, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
    headers = {"User-Agent": f"edgeweave/{edgeweave.__version__}", "Accept": "application/json"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    return {
        "base_url": config.server,
        "headers": headers,
        "verify": config.ssl_context(),
        "timeout": httpx.Timeout(settings.timeout_s),
        "trust_env": False,  # proxies from the environment would surprise on loopback
    }


def build(client: httpx.Client | httpx.AsyncClient, request: Request) -> httpx.Request:
    content = None
    headers = {}
    if request.body is not None:
        content = json.dumps(request.body).encode()
        headers["Content-Type"] = request.content_type
    return client.build_request(
        request.method, request.path, params=request.params, content=content, headers=headers
    )


def describe(server: str, request: Request) -> str:
    return f"{request.method} {server}{request.path}"


def watch_timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(settings.timeout_s, read=settings.watch_idle_timeout_s)


@contextmanager
def translated_errors(server: str, request: Request) -> Iterator[None]:
    """Re-raise httpx failures as edgeweave errors naming the server."""
    try:
        yield
    except httpx.TimeoutException as e:
        raise APIError(
            f"{describe(server, request)}: timed out ({type(e).__name__}); is the cloud overloaded?"
        ) from e
    except httpx.ConnectError as e:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            hint = " (TLS: the server's certificate is not signed by the configured CA)"
        raise APIError(f"cannot reach the cloud at {server}: {_reason(e)}{hint}") from e
    except httpx.TransportError as e:
        raise APIError(f"{describe(server, request)}: connection failed: {_reason(e)}") from e
    except httpx.InvalidURL as e:
        raise APIError(f"bad server URL {server!r}: {e}") from e


def _reason(e: Exception) -> str:
    text = str(e)
    return text or type(e).__name__
