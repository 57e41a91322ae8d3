"""The endpoint catalog: services from desired objects, endpoints per port, names, bounds."""

from __future__ import annotations

from typing import Any

import pytest

from edgeweave.errors import NotFound, TooManyRequests
from edgeweave.mesh.catalog import Catalog, Endpoint, Policy, ServicePortRef
from edgeweave.models.services import Service


def service(name: str = "counter", namespace: str = "default", **spec: Any) -> Service:
    body: dict[str, Any] = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
    body.update(spec)
    return Service.model_validate(
        {
            "apiVersion": "edgeweave.io/v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }
    )


REF = ServicePortRef("default", "counter", 80)
A = Endpoint("node-a", "10.0.0.1", 8080)
B = Endpoint("node-b", "10.0.0.2", 8080, path="relay")


def test_apply_service_records_ports_and_policy() -> None:
    catalog = Catalog()
    entry = catalog.apply_service(
        service(
            loadBalancing="ConsistentHash",
            sessionAffinity="ClientIP",
            consistentHash={"key": "header", "header": "X-User"},
            ports=[{"name": "http", "port": 80, "targetPort": "web"}],
        )
    )
    assert entry.policy == Policy("ConsistentHash", True, "header", "X-User")
    assert entry.port(80) is not None and entry.port(80).target == "web"  # type: ignore[union-attr]
    assert catalog.service("default", "counter") == entry


def test_target_port_defaults_to_the_service_port() -> None:
    entry = Catalog().apply_service(service())
    assert entry.ports[0].target == 80


def test_lookup_by_short_and_full_names_is_case_insensitive() -> None:
    catalog = Catalog(domain="cluster.local")
    catalog.apply_service(service())
    for name in ("counter.default", "Counter.Default.", "counter.default.svc.cluster.local."):
        entry = catalog.lookup(name)
        assert entry is not None and entry.name == "counter"
    assert catalog.lookup("counter.other") is None
    assert catalog.lookup("counter.default.svc.other.local") is None
    assert catalog.lookup("counter") is None
    assert catalog.lookup("") is None


def test_cluster_domain_membership() -> None:
    catalog = Catalog(domain="edge.test")
    assert catalog.in_cluster_domain("nope.default.svc.edge.test.")
    assert catalog.in_cluster_domain("svc.edge.test")
    assert not catalog.in_cluster_domain("example.com")
    assert not catalog.in_cluster_domain("counter.default")


def test_endpoints_are_kept_per_port_and_replaced_incrementally() -> None:
    catalog = Catalog()
    catalog.apply_service(service())
    catalog.set_endpoints(REF, [A])
    catalog.update_endpoint(REF, B)
    assert catalog.endpoints(REF) == (A, B)
    assert catalog.set_healthy(REF, A.key, False)
    assert catalog.endpoints(REF)[0].healthy is False
    assert catalog.remove_endpoint(REF, B.key)
    assert [e.key for e in catalog.endpoints(REF)] == [A.key]
    assert not catalog.remove_endpoint(REF, B.key)
    assert not catalog.set_healthy(REF, B.key, True)


def test_duplicate_endpoints_collapse_last_one_wins() -> None:
    catalog = Catalog()
    catalog.apply_service(service())
    catalog.set_endpoints(REF, [A, Endpoint("node-a", "10.0.0.1", 8080, healthy=False)])
    assert catalog.endpoints(REF) == (Endpoint("node-a", "10.0.0.1", 8080, healthy=False),)


def test_every_change_bumps_the_revision() -> None:
    catalog = Catalog()
    seen = [catalog.revision]
    catalog.apply_service(service())
    seen.append(catalog.revision)
    catalog.set_endpoints(REF, [A])
    seen.append(catalog.revision)
    catalog.delete_service("default", "counter")
    seen.append(catalog.revision)
    assert seen == sorted(set(seen))


def test_endpoints_for_unknown_service_or_port_are_refused() -> None:
    catalog = Catalog()
    with pytest.raises(NotFound, match="not in the mesh catalog"):
        catalog.set_endpoints(REF, [A])
    catalog.apply_service(service())
    with pytest.raises(NotFound, match="no port 81"):
        catalog.set_endpoints(ServicePortRef("default", "counter", 81), [A])


def test_reapplying_a_service_drops_endpoints_of_removed_ports_only() -> None:
    catalog = Catalog()
    two_ports = [{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]
    catalog.apply_service(service(ports=two_ports))
    admin = ServicePortRef("default", "counter", 9000)
    catalog.set_endpoints(REF, [A])
    catalog.set_endpoints(admin, [B])
    catalog.apply_service(service(ports=[{"name": "http", "port": 80}]))
    assert catalog.endpoints(REF) == (A,)
    assert catalog.endpoints(admin) == ()
    assert catalog.all_endpoints("default", "counter") == {80: (A,)}


def test_delete_service_forgets_its_endpoints() -> None:
    catalog = Catalog()
    catalog.apply_service(service())
    catalog.set_endpoints(REF, [A])
    assert catalog.delete_service("default", "counter")
    assert not catalog.delete_service("default", "counter")
    assert catalog.endpoints(REF) == ()
    assert catalog.lookup("counter.default") is None
    assert len(catalog) == 0


def test_sizes_are_bounded() -> None:
    catalog = Catalog(max_services=2, max_endpoints_per_port=2)
    catalog.apply_service(service("a"))
    catalog.apply_service(service("b"))
    catalog.apply_service(service("b"))  # replacing does not count twice
    with pytest.raises(TooManyRequests, match="full"):
        catalog.apply_service(service("c"))
    ref = ServicePortRef("default", "a", 80)
    with pytest.raises(TooManyRequests, match="more than 2 endpoints"):
        catalog.set_endpoints(ref, [Endpoint("n", f"10.0.0.{i}", 80) for i in range(3)])
    assert catalog.endpoints(ref) == ()


def test_services_are_listed_in_name_order() -> None:
    catalog = Catalog()
    for name in ("b", "a"):
        catalog.apply_service(service(name))
    catalog.apply_service(service("a", namespace="ops"))
    assert [(e.namespace, e.name) for e in catalog.services()] == [
        ("default", "a"),
        ("default", "b"),
        ("ops", "a"),
    ]
