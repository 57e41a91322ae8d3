"""The cloud hub: the server end of the cloud-edge link (docs/design/edge-link.md §3, §5-§7).

What belongs here: the TLS WebSocket server nodes dial (``server``), one session per
connection (``session``, ``sendq``, ``logs``), the in-memory index of which objects each node
should hold (``index``) fed by one store watch (``dispatch``), the fair upstream committer
(``upstream``) and the node lifecycle controller (``lifecycle``).

What does not: HTTP endpoints (the API relays logs through :meth:`Hub.open_log_stream`),
anything from ``edgeweave.edge``, and reading settings or opening sockets on its own — the
cloud's composition root builds :class:`HubDeps` and calls :func:`open_hub`.
"""

from edgeweave.cloud.hub.server import Hub, HubDeps, open_hub
from edgeweave.config.settings import HubSettings

__all__ = ["Hub", "HubDeps", "HubSettings", "open_hub"]
