"""The agent's mesh host, the parts without sockets: addresses, objects, paths, settings."""

from __future__ import annotations

from typing import Any

import pytest

from edgeweave.cli.endpoints import endpoints_table
from edgeweave.config.edge import load_edge_settings
from edgeweave.edge.mesh.addresses import AddressPool, join_host_port, parse_host_port
from edgeweave.edge.mesh.host import env_name
from edgeweave.edge.mesh.objects import RemoteView, endpoints_by_port, service_entry
from edgeweave.edge.mesh.paths import EndpointPaths
from edgeweave.edge.mesh.serve import LOOPBACK_DNS, dns_candidates, dns_upstream, relay_url
from edgeweave.errors import ConfigError, InvalidObject, TooManyRequests
from edgeweave.mesh.catalog import Endpoint, EndpointPath


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_service_addresses_are_stable_distinct_and_bounded() -> None:
    pool = AddressPool("127.100.0.0/16")
    web = pool.allocate("default", "web")
    assert web.startswith("127.100.") and web not in ("127.100.0.0", "127.100.255.255")
    assert pool.allocate("default", "web") == web
    assert AddressPool("127.100.0.0/16").allocate("default", "web") == web  # after a restart
    assert pool.allocate("default", "api") != web

    tiny = AddressPool("127.1.1.0/30")  # two usable addresses
    first, second = tiny.allocate("a", "x"), tiny.allocate("a", "y")
    assert {first, second} == {"127.1.1.1", "127.1.1.2"}
    with pytest.raises(TooManyRequests):
        tiny.allocate("a", "z")
    tiny.release("a", "x")
    assert tiny.allocate("a", "z") == first
    with pytest.raises(ConfigError):
        AddressPool("not-a-network")


def test_host_port_strings() -> None:
    assert parse_host_port("127.0.0.1:10053", "x") == ("127.0.0.1", 10053)
    assert parse_host_port("[::1]:53", "x") == ("::1", 53)
    assert join_host_port("::1", 53) == "[::1]:53"
    for bad in ("127.0.0.1", ":53", "h:70000", "h:port"):
        with pytest.raises(ConfigError, match=r"mesh\.dns_listen"):
            parse_host_port(bad, "mesh.dns_listen")


def test_dns_listens_where_settings_say_and_auto_prefers_the_link_local_address_as_root() -> None:
    assert dns_candidates("127.0.0.1:0", is_root=True) == [("127.0.0.1", 0)]
    assert dns_candidates("auto", is_root=True)[0] == ("169.254.96.16", 53)
    assert dns_candidates("auto", is_root=False) == [LOOPBACK_DNS, ("127.0.0.1", 0)]
    assert dns_upstream("system") == "system"
    assert dns_upstream("none") is None
    assert dns_upstream("10.0.0.53:53") == ("10.0.0.53", 53)
    assert relay_url("wss://cloud.example:7443/link") == "wss://cloud.example:7443/relay"


def service(**spec: Any) -> dict[str, Any]:
    body = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}], **spec}
    return {"kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": body}


def test_a_stored_service_becomes_a_catalog_entry_without_pydantic() -> None:
    entry = service_entry(
        service(
            ports=[{"name": "http", "port": 80, "targetPort": "http"}, {"name": "m", "port": 9}],
            loadBalancing="ConsistentHash",
            consistentHash={"key": "header", "header": "X-User"},
            sessionAffinity="ClientIP",
        )
    )
    assert (entry.namespace, entry.name) == ("shop", "web")
    assert [(p.port, p.target) for p in entry.ports] == [(80, "http"), (9, 9)]
    assert entry.policy.load_balancing == "ConsistentHash"
    assert entry.policy.hash_header == "X-User" and entry.policy.session_affinity
    for bad in (service(ports=[]), service(ports=[{"port": 0}]), service(loadBalancing="Best")):
        with pytest.raises(InvalidObject, match="shop/web"):
            service_entry(bad)


def test_endpoints_on_this_node_go_to_the_local_host_and_the_rest_by_their_path() -> None:
    obj = {
        "endpoints": [
            {
                "node": "me",
                "address": "10.0.0.1",
                "ready": True,
                "ports": [{"port": 80, "targetPort": 8080}],
            },
            {
                "node": "far",
                "address": "10.0.0.2",
                "ready": True,
                "ports": [{"port": 80, "targetPort": 8081}],
            },
            {
                "node": "near",
                "address": "10.0.0.3",
                "ready": False,
                "ports": [{"port": 80, "targetPort": 8082}],
            },
            {
                "node": "hidden",
                "address": "",
                "ready": True,
                "ports": [{"port": 80, "targetPort": 8083}],
            },
            {"node": "junk", "ports": [{"port": "80"}]},
            "junk",
        ]
    }
    known: dict[str, EndpointPath] = {"far/10.0.0.2:8081": "relay"}
    view = RemoteView("me", "127.0.0.1", known.get)
    found = endpoints_by_port(obj, view)[80]
    assert found == [
        Endpoint("me", "127.0.0.1", 8080, True, "direct"),
        Endpoint("far", "10.0.0.2", 8081, True, "relay"),
        Endpoint("near", "10.0.0.3", 8082, False, "direct"),
        Endpoint("hidden", "", 8083, True, "relay"),
    ]


def test_paths_per_endpoint_report_per_node_and_relayed_ones_are_retried() -> None:
    clock = Clock()
    paths = EndpointPaths(clock, max_endpoints=3)
    assert paths.due("a/1:1", 30.0)
    assert paths.record("a/1:1", "a", "relay")
    assert not paths.record("a/1:1", "a", "relay")  # no change
    assert paths.record("a/1:2", "a", "direct")
    assert paths.record("b/2:1", "b", "relay")
    assert paths.by_node() == {"a": "direct", "b": "relay"}  # a: any endpoint direct
    assert not paths.due("b/2:1", 30.0)
    clock.now += 30.0
    assert paths.due("b/2:1", 30.0) and not paths.due("a/1:2", 30.0)
    paths.record("c/3:1", "c", "direct")  # over the bound: the oldest check goes
    assert paths.path_to("a/1:1") is None
    assert paths.forget_except({"c/3:1"})
    assert paths.by_node() == {"c": "direct"}


def test_env_names_and_text_settings_from_the_environment() -> None:
    assert env_name("occupancy-api.v2") == "OCCUPANCY_API_V2"
    settings = load_edge_settings(
        env={
            "EDGEWEAVE_MESH__DNS_LISTEN": "127.0.0.1:0",
            "EDGEWEAVE_MESH__ADVERTISE_ADDRESS": "10.1.2.3",
            "EDGEWEAVE_MESH__ENABLED": "false",
        }
    )
    assert settings.mesh.dns_listen == "127.0.0.1:0"
    assert settings.mesh.advertise_address == "10.1.2.3"
    assert not settings.mesh.enabled
    with pytest.raises(ConfigError, match=r"mesh\.domain: must be text"):
        load_edge_settings(env={}, overrides={"mesh.domain": ["x"]})


def test_get_endpoints_shows_a_row_per_endpoint_and_wide_adds_each_consumers_path() -> None:
    obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "endpoints": [
            {
                "node": "a",
                "app": "web-a",
                "address": "10.0.0.1",
                "ready": True,
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
            {
                "node": "c",
                "app": "web-c",
                "address": "",
                "ready": False,
                "ports": [{"port": 80, "targetPort": 8081}],
            },
        ],
        "status": {"paths": {"b": {"a": "direct", "c": "relay"}, "d": {"c": "relay"}}},
    }
    lines = endpoints_table([obj], wide=True, all_namespaces=False).splitlines()
    assert lines[0].split() == ["NAME", "ENDPOINT", "PORT", "NODE", "APP", "READY", "PATHS", "AGE"]
    assert lines[1].split()[:7] == [
        "web",
        "10.0.0.1:8080",
        "80/http",
        "a",
        "web-a",
        "true",
        "b:direct",
    ]
    assert lines[2].split()[:7] == ["web", "-:8081", "80", "c", "web-c", "false", "b:relay,d:relay"]
    narrow = endpoints_table([obj], wide=False, all_namespaces=True).splitlines()
    assert narrow[0].split()[0] == "NAMESPACE" and "PATHS" not in narrow[0]
