"""Addresses on this node's side of the mesh: one proxy address per service, listen strings.

Each service gets its own address from ``mesh.service_cidr`` (default ``127.100.0.0/16``: on
Linux every ``127.x`` address reaches the loopback interface, so nothing has to be configured),
and its proxies listen there on the service's own ports. That is what lets two services both
use port 80, and what the DNS responder puts in a name's A record — a ClusterIP, node-local.

Allocation is stable: an address is derived from a hash of ``<namespace>/<name>`` and only
steps to the next free one on a collision, so a service keeps its address across agent restarts
(apps may have cached it, from DNS or ``EDGEWEAVE_SERVICE_*``). Pure: no sockets here.
"""

from __future__ import annotations

import hashlib
import ipaddress

from edgeweave.errors import ConfigError, TooManyRequests

Key = tuple[str, str]


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a pair; :class:`ConfigError` naming ``what``."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise ConfigError(f"{what}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:10053)")
    return host, port


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AddressPool:
    """Service proxy addresses from a CIDR; see the module docstring."""

    def __init__(self, cidr: str) -> None:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as e:
            raise ConfigError(f"mesh.service_cidr {cidr!r} is not a network: {e}") from e
        self.network = network
        # skip the network and broadcast addresses where they exist (not in a /31 or /32)
        spare = 2 if network.num_addresses > 2 else 0
        self._first = int(network.network_address) + spare // 2
        self._size = network.num_addresses - spare
        self._by_key: dict[Key, str] = {}
        self._taken: dict[str, Key] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def address_of(self, namespace: str, name: str) -> str | None:
        return self._by_key.get((namespace, name))

    def allocate(self, namespace: str, name: str) -> str:
        """The address of ``namespace/name``, allocating it on first use."""
        key = (namespace, name)
        held = self._by_key.get(key)
        if held is not None:
            return held
        if len(self._taken) >= self._size:
            raise TooManyRequests(
                f"mesh.service_cidr {self.network} has no free address for {name}.{namespace}"
            )
        digest = hashlib.blake2b(f"{namespace}/{name}".encode(), digest_size=8).digest()
        offset = int.from_bytes(digest, "big") % self._size
        while True:
            address = str(ipaddress.ip_address(self._first + offset))
            if address not in self._taken:
                break
            offset = (offset + 1) % self._size
        self._by_key[key] = address
        self._taken[address] = key
        return address

    def release(self, namespace: str, name: str) -> None:
        address = self._by_key.pop((namespace, name), None)
        if address is not None:
            del self._taken[address]
