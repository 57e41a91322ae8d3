"""The runtime's light App reader agrees with the full kind models (edge/runtime/spec.py)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from edgeweave.edge.runtime.spec import AppSpec, SpecError, config_files
from edgeweave.models.apps import AppSpec as ModelAppSpec
from edgeweave.models.configs import ConfigMap, Secret

DIGEST = "sha256:" + "ab" * 32
MINIMAL: dict[str, Any] = {"lifecycle": {"run": ["python3", "app.py"]}}
FULL: dict[str, Any] = {
    "nodeSelector": {"role": "camera"},
    "nodeNames": ["n1", "n2"],
    "artifacts": [{"name": "app.py", "digest": DIGEST}, {"name": "lib/m.bin", "digest": DIGEST}],
    "lifecycle": {"install": ["pip", "install", "x"], "run": ["python3", "app.py", "--n", "5"]},
    "env": {"LOG_LEVEL": "info"},
    "configRefs": [{"name": "cfg", "mountPath": "conf", "envPrefix": "CFG_"}],
    "secretRefs": [{"name": "sec"}],
    "restartPolicy": "OnFailure",
    "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}],
    "healthCheck": {"http": {"port": "http", "path": "/healthz"}, "periodSeconds": 5},
    "resources": {"limits": {"memory": "64Mi", "cpu": "500m", "openFiles": 256}},
}
VARIANTS: list[dict[str, Any]] = [
    MINIMAL,
    FULL,
    {**MINIMAL, "healthCheck": {"tcp": {"port": 9000}, "failureThreshold": 2}},
    {**MINIMAL, "healthCheck": {"exec": {"command": ["true"]}, "initialDelaySeconds": 0}},
    {**MINIMAL, "resources": {}},
    {**MINIMAL, "resources": {"limits": {"memoryBytes": 1 << 20, "cpu": 0.5, "processes": 9}}},
]


@pytest.mark.parametrize("spec", VARIANTS)
def test_the_dump_is_the_models_dump_so_spec_hashes_survive_an_upgrade(
    spec: dict[str, Any],
) -> None:
    expected = ModelAppSpec.model_validate(copy.deepcopy(spec)).model_dump(mode="json")
    assert AppSpec.read(copy.deepcopy(spec)).to_json() == expected


def test_the_fields_the_runtime_uses_are_read() -> None:
    spec = AppSpec.read(FULL)
    assert spec.lifecycle.run == ["python3", "app.py", "--n", "5"]
    assert spec.restartPolicy == "OnFailure" and spec.env == {"LOG_LEVEL": "info"}
    assert [a.name for a in spec.artifacts] == ["app.py", "lib/m.bin"]
    assert spec.configRefs[0].mountPath == "conf" and spec.configRefs[0].envPrefix == "CFG_"
    assert spec.healthCheck is not None and spec.healthCheck.probe_port() == "http"
    assert spec.resources is not None and spec.resources.limits is not None
    assert spec.resources.limits.memory_limit_bytes() == 64 << 20
    assert spec.resources.limits.cpu_millis() == 500


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(FULL)
    node = spec
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[parts[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("not an object", "spec"),
        ({}, "spec.lifecycle"),
        (_with("lifecycle.run", "python3 app.py"), "spec.lifecycle.run"),
        (_with("lifecycle.run", []), "spec.lifecycle.run"),
        (_with("lifecycle.run", ["a", 1]), "spec.lifecycle.run[1]"),
        (_with("artifacts", [{"name": "../x", "digest": DIGEST}]), "spec.artifacts[0].name"),
        (_with("artifacts", [{"name": "x", "digest": "md5:1"}]), "spec.artifacts[0].digest"),
        (_with("ports", [{"name": "http", "port": 0}]), "spec.ports[0].port"),
        (_with("ports", [{"name": "http", "port": True}]), "spec.ports[0].port"),
        (_with("ports", []), "spec.healthCheck"),  # the named probe port is gone
        (_with("healthCheck", {"periodSeconds": 5}), "spec.healthCheck"),
        (_with("restartPolicy", "Sometimes"), "spec.restartPolicy"),
        (_with("env", {"A=B": "x"}), "spec.env.A=B"),
        (_with("configRefs", [{"name": "Bad/Name"}]), "spec.configRefs[0].name"),
        (_with("resources", {"limits": {"memory": "lots"}}), "spec.resources.limits"),
    ],
)
def test_what_the_runtime_cannot_use_is_a_spec_error_naming_the_field(
    spec: Any, field: str
) -> None:
    with pytest.raises(SpecError) as caught:
        AppSpec.read(spec)
    assert caught.value.path == field


def test_config_files_match_the_models() -> None:
    cm = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"},
        "data": {"a.txt": "x"},
        "binaryData": {"b.bin": base64.b64encode(b"\0\1").decode()},
    }
    secret = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "default"},
        "data": {"t": base64.b64encode(b"old").decode(), "u": base64.b64encode(b"u").decode()},
        "stringData": {"t": "new"},
    }
    assert config_files("ConfigMap", cm) == ConfigMap.model_validate(cm).files()
    assert config_files("Secret", secret) == Secret.model_validate(secret).files()
    with pytest.raises(SpecError):
        config_files("ConfigMap", {**cm, "data": {"../etc": "x"}})
    with pytest.raises(SpecError):
        config_files("Secret", {**secret, "data": {"t": "not base64!"}})
