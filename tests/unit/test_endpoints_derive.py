"""What a Service's Endpoints object says, from Services, Apps and Nodes (no store, no sockets)."""

from __future__ import annotations

from typing import Any

from edgeweave.cloud.endpoints.derive import (
    app_view,
    derive_entries,
    derive_paths,
    endpoints_object,
    node_address,
    node_view,
    same_endpoints,
    service_view,
)
from edgeweave.cloud.hub.index import DesiredIndex
from edgeweave.cloud.hub.upstream import translate
from edgeweave.models import registry
from edgeweave.protocol.messages import UpstreamEntry


def service(ports: list[dict[str, Any]], selector: dict[str, str] | None = None) -> Any:
    view = service_view(
        {
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": selector or {"app": "web"}, "ports": ports},
        }
    )
    assert view is not None
    return view


def app(
    name: str,
    nodes: dict[str, dict[str, Any]],
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    namespace: str = "default",
) -> Any:
    view = app_view(
        {
            "kind": "App",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "web"}},
            "spec": {"ports": ports or [{"name": "http", "port": 8080}]},
            "status": {"nodes": nodes},
        }
    )
    assert view is not None
    return view


def node(name: str, *addresses: tuple[str, str], paths: dict[str, Any] | None = None) -> Any:
    status = {
        "addresses": [{"type": t, "address": a} for t, a in addresses],
        "meshPaths": paths or {},
    }
    view = node_view({"kind": "Node", "metadata": {"name": name}, "status": status})
    assert view is not None
    return view


RUNNING = {"phase": "Running", "ready": True}


def test_running_instances_of_selected_apps_are_the_endpoints_ready_or_not() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "http"}])
    apps = [
        app("web-1", {"a": RUNNING, "b": {"phase": "Running", "ready": False}}),
        app("web-2", {"c": {"phase": "Failed"}, "d": {"phase": "Pending"}}),
        app("other", {"a": RUNNING}, labels={"app": "other"}),
        app("elsewhere", {"a": RUNNING}, namespace="prod"),
    ]
    nodes = {"a": node("a", ("InternalIP", "10.0.0.1")), "b": node("b")}
    entries = derive_entries(svc, apps, nodes)
    assert entries == [
        {
            "node": "a",
            "app": "web-1",
            "address": "10.0.0.1",
            "ready": True,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
        {
            "node": "b",
            "app": "web-1",
            "address": "",
            "ready": False,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    ]


def test_target_port_is_a_number_or_an_app_port_name_and_unserved_ports_are_left_out() -> None:
    svc = service(
        [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9100, "targetPort": "metrics"},
            {"name": "raw", "port": 7000},
        ]
    )
    entries = derive_entries(svc, [app("web", {"a": RUNNING})], {})
    assert entries[0]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "raw", "port": 7000, "targetPort": 7000},
    ]
    only_named = service([{"port": 80, "targetPort": "grpc"}])
    assert derive_entries(only_named, [app("web", {"a": RUNNING})], {}) == []


def test_address_is_the_first_internal_ip_else_external_else_none() -> None:
    both = {
        "addresses": [
            {"type": "ExternalIP", "address": "1.2.3.4"},
            {"type": "InternalIP", "address": "10.0.0.2"},
        ]
    }
    assert node_address(both) == "10.0.0.2"
    assert node_address({"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}) == "1.2.3.4"
    assert node_address({"addresses": [{"type": "Hostname", "address": "box"}]}) == ""
    assert node_address({}) == ""


def test_paths_keep_only_endpoint_nodes_and_known_path_words() -> None:
    nodes = {
        "b": node("b", paths={"a": "relay", "z": "direct", "c": "sideways"}),
        "c": node("c", paths={"a": "direct"}),
        "d": node("d"),
    }
    entries = [{"node": "a"}]
    assert derive_paths(entries, nodes) == {"b": {"a": "relay"}, "c": {"a": "direct"}}


def test_the_object_validates_and_compares_by_content_only() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "http"}])
    entries = derive_entries(
        svc, [app("web", {"a": RUNNING})], {"a": node("a", ("InternalIP", "10.0.0.1"))}
    )
    obj = endpoints_object(svc, entries, {"b": {"a": "direct"}})
    registry.validate(obj)  # the read-only kind's model accepts what the controller writes
    stored = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "7", "uid": "u"}}
    assert same_endpoints(obj, stored)
    assert not same_endpoints(obj, {**obj, "status": {"paths": {}}})


def test_views_ignore_what_endpoints_do_not_depend_on() -> None:
    one = app("web", {"a": {**RUNNING, "pid": 1, "restarts": 0}})
    two = app("web", {"a": {**RUNNING, "pid": 2, "restarts": 3}})
    assert one == two


def test_endpoints_go_with_the_service_and_path_changes_are_not_resent() -> None:
    index = DesiredIndex()
    rv = iter(range(1, 100))

    def put(obj: dict[str, Any]) -> dict[str, set[Any]]:
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(rv))
        return index.apply("MODIFIED", obj, int(obj["metadata"]["resourceVersion"]))

    put({"kind": "Node", "metadata": {"name": "b"}})
    put(
        {
            "kind": "App",
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {"nodeNames": ["b"]},
        }
    )
    body: dict[str, Any] = {
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "endpoints": [{"node": "a"}],
    }
    marks = put({**body, "status": {"paths": {}}})
    assert {r.kind for r in marks["b"]} == {"Endpoints"}
    assert {r.kind for r in index.desired_refs("b")} == {"Node", "App", "Endpoints"}
    assert put({**body, "status": {"paths": {"b": {"a": "relay"}}}}) == {}


def test_reported_mesh_paths_replace_the_old_ones_and_junk_is_dropped() -> None:
    index = DesiredIndex()
    payload = {"mesh_paths": {"a": "direct", "c": "relay", "d": "maybe", "x" * 300: "direct"}}
    done = translate("b", [UpstreamEntry(seq=1, topic="node.status", payload=payload)], 0, index)
    assert done.status_writes == [
        ("Node", "", "b", {"meshPaths": None}),
        ("Node", "", "b", {"meshPaths": {"a": "direct", "c": "relay"}}),
    ]
