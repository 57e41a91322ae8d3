"""The kind registry: lookups, envelope checks, error paths, column paths, examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeweave.errors import InvalidObject, UnknownKind
from edgeweave.models import registry
from edgeweave.models.columns import column_text
from edgeweave.models.devices import validate_device_against_model
from edgeweave.models.pipelines import pipeline_from_pachyderm
from edgeweave.models.validation import loc_to_path
from edgeweave.pipelines.dagspec import workflow_object

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("App", "App"),
        ("apps", "App"),
        ("APP", "App"),
        ("svc", "Service"),
        ("services", "Service"),
        ("cm", "ConfigMap"),
        ("configmap", "ConfigMap"),
        ("secrets", "Secret"),
        ("no", "Node"),
        ("Nodes", "Node"),
        ("dm", "DeviceModel"),
        ("devicemodels", "DeviceModel"),
        ("dev", "Device"),
        ("device", "Device"),
        ("devices.devices.kubeedge.io", "Device"),
        ("repos", "Repo"),
        ("pp", "Pipeline"),
        ("pipeline", "Pipeline"),
    ],
)
def test_lookup_finds_a_kind_by_every_name_a_user_may_type(name: str, kind: str) -> None:
    assert registry.lookup(name).kind == kind


def test_lookup_of_an_unknown_name_lists_the_known_kinds() -> None:
    with pytest.raises(UnknownKind) as info:
        registry.lookup("pods")
    assert "DeviceModel" in info.value.message and "svc" in info.value.message


def test_every_kind_has_unique_names_and_the_right_group() -> None:
    names = [n for info in registry.all_kinds() for n in info.names() if n != info.singular]
    assert len(names) == len(set(names))
    for info in registry.all_kinds():
        expected = (
            "devices.kubeedge.io/v1beta1" if info.kind.startswith("Device") else "edgeweave.io/v1"
        )
        assert info.api_version == expected
        assert info.namespaced == (info.kind != "Node")
        assert info.columns


def test_by_plural_finds_the_kind_served_at_a_path() -> None:
    assert registry.by_plural("devices.kubeedge.io", "v1beta1", "devices").kind == "Device"
    with pytest.raises(UnknownKind):
        registry.by_plural("edgeweave.io", "v1", "devices")


def test_a_kind_under_the_wrong_api_version_is_a_clear_error() -> None:
    with pytest.raises(InvalidObject) as info:
        registry.validate(
            {"apiVersion": "edgeweave.io/v1", "kind": "Device", "metadata": {"name": "d"}}
        )
    assert not isinstance(info.value, UnknownKind)
    assert info.value.field == "apiVersion"
    assert "devices.kubeedge.io/v1beta1" in info.value.message


def test_an_unknown_kind_is_rejected_with_a_case_hint() -> None:
    with pytest.raises(UnknownKind, match="did you mean App"):
        registry.by_api_version_kind("edgeweave.io/v1", "app")
    with pytest.raises(UnknownKind, match="'Pod'"):
        registry.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], ""),
        ({"kind": "App"}, "apiVersion"),
        ({"apiVersion": "edgeweave.io/v1"}, "kind"),
        ({"apiVersion": "edgeweave.io/v1", "kind": "Repo"}, "metadata"),
        (
            {
                "apiVersion": "edgeweave.io/v1",
                "kind": "Repo",
                "metadata": {"name": "r"},
                "colour": 1,
            },
            "colour",
        ),
        (
            {"apiVersion": "edgeweave.io/v1", "kind": "Repo", "metadata": {"name": "-r"}},
            "metadata.name",
        ),
        ({"apiVersion": "edgeweave.io/v1", "kind": "App", "metadata": {"name": "a"}}, "spec"),
    ],
)
def test_envelope_problems_name_the_field(obj: Any, field: str) -> None:
    with pytest.raises(InvalidObject) as info:
        registry.validate(obj)
    assert info.value.field == field


def test_validate_defaults_the_namespace_and_does_not_mutate_its_input() -> None:
    obj = {"apiVersion": "edgeweave.io/v1", "kind": "Repo", "metadata": {"name": "images"}}
    out = registry.validate(obj, default_namespace="site-a")
    assert out["metadata"] == {"name": "images", "namespace": "site-a"}
    assert obj["metadata"] == {"name": "images"}
    kept = registry.validate({**obj, "metadata": {"name": "images", "namespace": "b"}})
    assert kept["metadata"]["namespace"] == "b"


def test_server_metadata_is_accepted_on_input() -> None:
    obj = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Repo",
        "metadata": {
            "name": "images",
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"a": "b"},
        },
        "status": {"commits": 3},
    }
    assert registry.validate(obj) == obj


def test_errors_carry_every_problem_as_path_and_message() -> None:
    obj = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel",
        "metadata": {"name": "m"},
        "spec": {"properties": [{"name": "t", "type": "int"}, {"name": "t", "type": "INT"}]},
    }
    with pytest.raises(InvalidObject) as info:
        registry.validate(obj)
    assert info.value.field == "spec.properties[0].type"
    assert info.value.errors[0].startswith("spec.properties[0].type: Input should be 'INT'")
    assert "DeviceModel default/m is invalid" in info.value.message
    obj["spec"]["properties"][0]["type"] = "INT"
    with pytest.raises(InvalidObject) as info:
        registry.validate(obj)
    assert info.value.errors == ["spec.properties[1].name: duplicate property name"]


def test_pydantic_locations_become_dotted_paths_with_indexes() -> None:
    assert loc_to_path(("spec", "ports", 0, "port")) == "spec.ports[0].port"
    assert (
        loc_to_path(("metadata", "labels", "edgeweave.io/worker"))
        == 'metadata.labels["edgeweave.io/worker"]'
    )
    assert (
        loc_to_path(("spec", "placement", "by-object", "nodeNames")) == "spec.placement.nodeNames"
    )


def _load(path: Path) -> list[dict[str, Any]]:
    """Manifests, Pachyderm pipeline specs (JSON or YAML) as Pipeline objects, and workflow
    files as Workflow objects."""
    if path.suffix == ".json":
        docs = [json.loads(path.read_text())]
    else:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [
        d if "kind" in d else workflow_object(d) if "workflow" in d else pipeline_from_pachyderm(d)
        for d in docs
    ]


DATA = {EXAMPLES / "pipelines" / "industrial" / "model.json"}  # what a pipeline reads
MANIFESTS = sorted(
    p for p in EXAMPLES.rglob("*.*") if p.suffix in (".yaml", ".yml", ".json") and p not in DATA
)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_example_manifest_validates(path: Path) -> None:
    objs = [registry.validate(doc) for doc in _load(path)]
    assert objs
    models = {o["metadata"]["name"]: o for o in objs if o["kind"] == "DeviceModel"}
    for obj in objs:
        if obj["kind"] == "Device":
            validate_device_against_model(obj, models.get(obj["spec"]["deviceModelRef"]["name"]))


def test_the_kubeedge_example_has_a_modbus_device_on_edge_1() -> None:
    docs = _load(EXAMPLES / "devices-kubeedge.yaml")
    device = next(d for d in docs if d["kind"] == "Device")
    assert device["spec"]["nodeName"] == "edge-1"
    assert device["spec"]["protocol"]["protocolName"] == "modbus"


def test_columns_read_values_along_their_paths() -> None:
    device = next(d for d in _load(EXAMPLES / "devices-kubeedge.yaml") if d["kind"] == "Device")
    info = registry.lookup("device")
    cells = {header: column_text(device, path) for header, path in info.columns + info.wide_columns}
    assert cells["MODEL"] == "kubeedge-thermostat-model"
    assert cells["NODE"] == "edge-1"
    assert cells["STATE"] == "<none>"
    assert cells["DESIRED/REPORTED"] == "temperature=-/-,target-temperature=21/20,heating=false/-"
    del device["status"]
    assert column_text(device, "@desiredReported") == (
        "temperature=-/-,target-temperature=21/-,heating=false/-"
    )
    assert column_text({"kind": "Device"}, "@desiredReported") == "<none>"
    app = _load(EXAMPLES / "app-occupancy.yaml")[0]
    assert column_text(app, "spec.nodeSelector") == "role=camera"
    assert column_text(app, "spec.lifecycle.run[3]") == "2"
    assert column_text(app, "spec.lifecycle.run[9]") == "<none>"
    app["status"] = {"nodes": {"edge-2": {"phase": "Failed"}, "edge-1": {"phase": "Running"}}}
    assert column_text(app, "status.nodes[@]") == "edge-1,edge-2"
    assert column_text(app, "status.nodes[*].phase") == "Running,Failed"


def test_the_sample_app_manifest_pins_the_digest_of_the_shipped_script() -> None:
    import hashlib

    app = _load(EXAMPLES / "app-occupancy.yaml")[0]
    script = (EXAMPLES / "apps" / "occupancy_counter.py").read_bytes()
    digest = "sha256:" + hashlib.sha256(script).hexdigest()
    assert app["spec"]["artifacts"][0]["digest"] == digest
