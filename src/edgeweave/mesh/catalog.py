"""The endpoint catalog: which services exist, how they balance, and where their endpoints are.

The catalog is the mesh's single source of truth on one node. Its host feeds it incrementally —
``apply_service`` for each desired ``Service`` object, ``set_endpoints`` / ``update_endpoint`` /
``remove_endpoint`` as App instances come, go or change health — and the DNS responder and the
proxies read it on every query or connection, so an update is visible at once.

Names: a service is found as ``<service>.<namespace>`` or
``<service>.<namespace>.svc.<domain>`` (case-insensitive, trailing dot allowed). Endpoints are
kept per service port, because one App instance serves each service port on its own target port.

Sizes are bounded (services, endpoints per port); going over raises ``TooManyRequests`` rather
than growing without limit. Pure data: this module must not do I/O, start tasks or know
who feeds it (cloud, edge store) — it only knows the ``Service`` model, and only for typing:
a host may feed ready-made entries (``apply_entry``) without loading pydantic, as the edge
agent does to stay small.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from edgeweave.errors import NotFound, TooManyRequests

if TYPE_CHECKING:
    from edgeweave.models.services import LoadBalancing, Service

EndpointPath = Literal["direct", "relay"]
HashKey = Literal["source", "header"]

DEFAULT_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One App instance serving one service port. ``path`` says how the proxy reaches it."""

    node: str
    address: str
    port: int
    healthy: bool = True
    path: EndpointPath = "direct"

    @property
    def key(self) -> str:
        """Identity that survives health and path changes (what balancers hash and remember)."""
        return f"{self.node}/{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Policy:
    """How connections to a service are spread (from ``spec.loadBalancing`` and friends)."""

    load_balancing: LoadBalancing = "RoundRobin"
    session_affinity: bool = False
    hash_key: HashKey = "source"
    hash_header: str | None = None


@dataclass(frozen=True, slots=True)
class PortEntry:
    name: str | None
    port: int
    target: int | str
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    namespace: str
    name: str
    ports: tuple[PortEntry, ...]
    policy: Policy

    def port(self, port: int) -> PortEntry | None:
        return next((p for p in self.ports if p.port == port), None)


@dataclass(frozen=True, slots=True)
class ServicePortRef:
    """Which service port a proxy listener stands for."""

    namespace: str
    name: str
    port: int

    def __str__(self) -> str:
        return f"{self.name}.{self.namespace}:{self.port}"


def policy_of(service: Service) -> Policy:
    spec = service.spec
    hashing = spec.consistentHash
    return Policy(
        load_balancing=spec.loadBalancing,
        session_affinity=spec.sessionAffinity == "ClientIP",
        hash_key=hashing.key if hashing is not None else "source",
        hash_header=hashing.header if hashing is not None else None,
    )


def entry_of(service: Service) -> ServiceEntry:
    ports = tuple(PortEntry(p.name, p.port, p.target(), p.protocol) for p in service.spec.ports)
    namespace = service.metadata.namespace or "default"
    return ServiceEntry(namespace, service.metadata.name, ports, policy_of(service))


class Catalog:
    """Services and their endpoints on this node (see the module docstring)."""

    def __init__(
        self,
        *,
        domain: str = DEFAULT_DOMAIN,
        max_services: int = 10_000,
        max_endpoints_per_port: int = 1_000,
    ) -> None:
        self.domain = domain.strip(".").lower()
        self.max_services = max_services
        self.max_endpoints_per_port = max_endpoints_per_port
        self._services: dict[tuple[str, str], ServiceEntry] = {}
        self._endpoints: dict[tuple[str, str, int], tuple[Endpoint, ...]] = {}
        self._revision = 0

    @property
    def revision(self) -> int:
        """Increases with every change, so readers can cache derived state cheaply."""
        return self._revision

    def __len__(self) -> int:
        return len(self._services)

    # --- updates -----------------------------------------------------------------------------

    def apply_service(self, service: Service) -> ServiceEntry:
        """Add or replace a service; endpoints of ports that no longer exist are dropped."""
        return self.apply_entry(entry_of(service))

    def apply_entry(self, entry: ServiceEntry) -> ServiceEntry:
        """``apply_service`` for an entry the host built itself."""
        if self._services.get((entry.namespace, entry.name)) == entry:
            return entry  # unchanged: keep the revision (and the endpoints) as they are
        key = (entry.namespace, entry.name)
        if key not in self._services and len(self._services) >= self.max_services:
            raise TooManyRequests(
                f"the mesh catalog is full ({self.max_services} services); cannot add "
                f"{entry.name}.{entry.namespace}: raise max_services or delete unused services"
            )
        self._services[key] = entry
        kept = {p.port for p in entry.ports}
        for ep_key in [k for k in self._endpoints if k[:2] == key and k[2] not in kept]:
            del self._endpoints[ep_key]
        self._revision += 1
        return entry

    def delete_service(self, namespace: str, name: str) -> bool:
        """Forget a service and its endpoints; False when it was not there."""
        if self._services.pop((namespace, name), None) is None:
            return False
        for ep_key in [k for k in self._endpoints if k[:2] == (namespace, name)]:
            del self._endpoints[ep_key]
        self._revision += 1
        return True

    def set_endpoints(self, ref: ServicePortRef, endpoints: Iterable[Endpoint]) -> None:
        """Replace every endpoint of one service port (duplicates by ``key``: the last wins)."""
        self._require_port(ref)
        by_key: dict[str, Endpoint] = {}
        for endpoint in endpoints:
            by_key[endpoint.key] = endpoint
            if len(by_key) > self.max_endpoints_per_port:
                raise TooManyRequests(
                    f"{ref} has more than {self.max_endpoints_per_port} endpoints; "
                    "raise max_endpoints_per_port"
                )
        self._endpoints[(ref.namespace, ref.name, ref.port)] = tuple(by_key.values())
        self._revision += 1

    def update_endpoint(self, ref: ServicePortRef, endpoint: Endpoint) -> None:
        """Add one endpoint, or replace the one with the same ``key`` (health, path changes)."""
        current = self.endpoints(ref)
        others = [e for e in current if e.key != endpoint.key]
        if len(others) == len(current):
            self.set_endpoints(ref, [*current, endpoint])
        else:
            self.set_endpoints(ref, [endpoint if e.key == endpoint.key else e for e in current])

    def set_healthy(self, ref: ServicePortRef, key: str, healthy: bool) -> bool:
        """Mark the endpoint with ``key`` (un)healthy; False when there is no such endpoint."""
        found = next((e for e in self.endpoints(ref) if e.key == key), None)
        if found is None:
            return False
        if found.healthy != healthy:
            self.update_endpoint(ref, replace(found, healthy=healthy))
        return True

    def remove_endpoint(self, ref: ServicePortRef, key: str) -> bool:
        current = self.endpoints(ref)
        kept = [e for e in current if e.key != key]
        if len(kept) == len(current):
            return False
        self.set_endpoints(ref, kept)
        return True

    def _require_port(self, ref: ServicePortRef) -> ServiceEntry:
        entry = self._services.get((ref.namespace, ref.name))
        if entry is None:
            raise NotFound(f"service {ref.name}.{ref.namespace} is not in the mesh catalog")
        if entry.port(ref.port) is None:
            ports = ", ".join(str(p.port) for p in entry.ports)
            raise NotFound(f"service {ref.name}.{ref.namespace} has no port {ref.port} ({ports})")
        return entry

    # --- reads ---------------------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> ServiceEntry | None:
        return self._services.get((namespace, name))

    def services(self) -> list[ServiceEntry]:
        return sorted(self._services.values(), key=lambda e: (e.namespace, e.name))

    def endpoints(self, ref: ServicePortRef) -> tuple[Endpoint, ...]:
        return self._endpoints.get((ref.namespace, ref.name, ref.port), ())

    def all_endpoints(self, namespace: str, name: str) -> Mapping[int, tuple[Endpoint, ...]]:
        entry = self._services.get((namespace, name))
        if entry is None:
            return {}
        return {p.port: self._endpoints.get((namespace, name, p.port), ()) for p in entry.ports}

    def lookup(self, name: str) -> ServiceEntry | None:
        """The service a DNS name stands for, or None."""
        parts = _labels(name)
        suffix = self.domain.split(".") if self.domain else []
        if len(parts) == 2:
            return self._services.get((parts[1], parts[0]))
        if len(parts) == 3 + len(suffix) and parts[2] == "svc" and parts[3:] == suffix:
            return self._services.get((parts[1], parts[0]))
        return None

    def in_cluster_domain(self, name: str) -> bool:
        """True for names under ``svc.<domain>``: the mesh answers those, never the upstream."""
        parts = _labels(name)
        suffix = ["svc", *self.domain.split(".")] if self.domain else ["svc"]
        return len(parts) >= len(suffix) and parts[-len(suffix) :] == suffix


def _labels(name: str) -> list[str]:
    return [label for label in name.lower().rstrip(".").split(".")] if name else []
