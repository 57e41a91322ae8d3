"""What the agent reports about its machine: capacity and addresses (read-only probes)."""

from __future__ import annotations

import os
import socket
from typing import Any


def capacity() -> dict[str, Any]:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return {"cpu": float(os.cpu_count() or 1), "memory_bytes": int(memory)}


def local_addresses(advertise: str = "") -> list[dict[str, str]]:
    """The hostname and the host's IPv4 addresses; with ``advertise``, that one address as the
    node's only ``InternalIP`` (what other nodes dial for its apps)."""
    host = socket.gethostname()
    found = [{"type": "Hostname", "address": host}]
    if advertise:
        return [*found, {"type": "InternalIP", "address": advertise}]
    try:
        for info in socket.getaddrinfo(host, None, family=socket.AF_INET):
            ip = str(info[4][0])
            if all(a["address"] != ip for a in found):
                found.append({"type": "InternalIP", "address": ip})
    except OSError:
        pass
    return found
