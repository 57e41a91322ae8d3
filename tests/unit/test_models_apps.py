"""App, Service, ConfigMap/Secret and Node models through the registry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.models import registry
from edgeweave.models.apps import Limits
from edgeweave.models.configs import Secret, secret_values
from edgeweave.models.quantities import parse_cpu_millis, parse_duration_s, parse_memory_bytes

DIGEST = "sha256:" + "ab" * 32


def design_app() -> dict[str, Any]:
    """The App of DESIGN.md §2, field for field."""
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": "occupancy-counter", "namespace": "default"},
        "spec": {
            "nodeSelector": {"role": "camera"},
            "artifacts": [{"name": "counter.py", "digest": DIGEST}],
            "lifecycle": {
                "install": [
                    "python3",
                    "-m",
                    "pip",
                    "install",
                    "--target",
                    "deps",
                    "-r",
                    "requirements.txt",
                ],
                "run": ["python3", "counter.py", "--interval", "5"],
            },
            "env": {"LOG_LEVEL": "info"},
            "restartPolicy": "Always",
            "ports": [{"name": "http", "port": 8080}],
            "healthCheck": {"http": {"port": 8080, "path": "/healthz"}, "periodSeconds": 5},
        },
    }


def invalid(obj: dict[str, Any]) -> InvalidObject:
    with pytest.raises(InvalidObject) as info:
        registry.validate(obj)
    return info.value


def test_the_design_example_app_validates_and_round_trips_unchanged() -> None:
    app = design_app()
    assert registry.validate(app) == app


def test_validation_injects_no_defaults_the_user_did_not_write() -> None:
    app = design_app()
    del app["spec"]["restartPolicy"]
    out = registry.validate(app)
    assert "restartPolicy" not in out["spec"]
    assert "protocol" not in out["spec"]["ports"][0]


def test_a_shell_string_as_run_command_is_rejected_with_a_hint_to_use_argv() -> None:
    app = design_app()
    app["spec"]["lifecycle"]["run"] = "python3 counter.py --interval 5"
    err = invalid(app)
    assert err.field == "spec.lifecycle.run"
    assert "argv list" in err.message


def test_an_empty_run_command_is_rejected() -> None:
    app = design_app()
    app["spec"]["lifecycle"]["run"] = []
    assert invalid(app).field == "spec.lifecycle.run"


def test_a_missing_run_command_is_reported_as_required() -> None:
    app = design_app()
    del app["spec"]["lifecycle"]["run"]
    err = invalid(app)
    assert err.errors == ["spec.lifecycle.run: required field is missing"]


def test_a_number_inside_argv_must_be_quoted() -> None:
    app = design_app()
    app["spec"]["lifecycle"]["run"] = ["python3", "counter.py", "--interval", 5]
    err = invalid(app)
    assert err.field == "spec.lifecycle.run"
    assert 'quote it: "5"' in err.message


def test_a_bad_artifact_digest_names_the_artifact_field() -> None:
    app = design_app()
    app["spec"]["artifacts"][0]["digest"] = "md5:abc"
    assert invalid(app).field == "spec.artifacts[0].digest"


def test_an_artifact_name_may_not_escape_the_app_directory() -> None:
    app = design_app()
    app["spec"]["artifacts"][0]["name"] = "../etc/passwd"
    assert invalid(app).field == "spec.artifacts[0].name"


def test_an_unknown_restart_policy_lists_the_allowed_ones() -> None:
    app = design_app()
    app["spec"]["restartPolicy"] = "Sometimes"
    err = invalid(app)
    assert err.field == "spec.restartPolicy"
    assert "'Always'" in err.message and "Sometimes" in err.message


def test_a_misspelled_field_is_reported_as_unknown() -> None:
    app = design_app()
    app["spec"]["restartpolicy"] = "Always"
    err = invalid(app)
    assert err.field == "spec.restartpolicy"
    assert "unknown field" in err.message


def test_every_problem_is_listed_with_its_path() -> None:
    app = design_app()
    app["spec"]["ports"] = [{"name": "http", "port": 0}, {"name": "Bad Name", "port": 80}]
    app["spec"]["restartPolicy"] = "Sometimes"
    err = invalid(app)
    paths = [e.split(":")[0] for e in err.errors]
    assert paths == ["spec.restartPolicy", "spec.ports[0].port", "spec.ports[1].name"]
    assert "App default/occupancy-counter" in err.message


def test_duplicate_port_names_are_rejected_at_the_duplicate() -> None:
    app = design_app()
    app["spec"]["ports"].append({"name": "http", "port": 9090})
    assert invalid(app).field == "spec.ports[1].name"


def test_a_health_check_needs_exactly_one_probe() -> None:
    app = design_app()
    app["spec"]["healthCheck"] = {"periodSeconds": 5}
    err = invalid(app)
    assert err.field == "spec.healthCheck"
    assert "exactly one of http, tcp, exec" in err.message


def test_a_health_check_may_name_a_declared_port_but_not_an_unknown_one() -> None:
    app = design_app()
    app["spec"]["healthCheck"] = {"tcp": {"port": "http"}}
    registry.validate(app)
    app["spec"]["healthCheck"] = {"tcp": {"port": "metrics"}}
    assert invalid(app).field == "spec.healthCheck.tcp.port"


def test_exec_probe_takes_an_argv_command() -> None:
    app = design_app()
    app["spec"]["healthCheck"] = {"exec": {"command": "curl localhost"}}
    assert invalid(app).field == "spec.healthCheck.exec.command"


def test_env_values_must_be_strings_and_names_valid() -> None:
    app = design_app()
    app["spec"]["env"] = {"RETRIES": 3}
    assert invalid(app).field == "spec.env.RETRIES"
    app["spec"]["env"] = {"1BAD": "x"}
    assert invalid(app).field == "spec.env"


def test_node_names_select_nodes_instead_of_labels() -> None:
    app = design_app()
    del app["spec"]["nodeSelector"]
    app["spec"]["nodeNames"] = ["node-a", "node-b"]
    assert registry.validate(app)["spec"]["nodeNames"] == ["node-a", "node-b"]
    app["spec"]["nodeNames"] = ["node-a", "node-a"]
    assert invalid(app).field == "spec.nodeNames[1]"


def test_config_and_secret_refs_take_a_mount_path_or_env_prefix() -> None:
    app = design_app()
    app["spec"]["configRefs"] = [{"name": "counter-config", "mountPath": "config"}]
    app["spec"]["secretRefs"] = [{"name": "counter-credentials", "envPrefix": "CRED_"}]
    registry.validate(app)
    app["spec"]["secretRefs"] = [{"name": "Not_A_Name"}]
    assert invalid(app).field == "spec.secretRefs[0].name"


def test_resource_limits_accept_kubernetes_quantities() -> None:
    limits = Limits.model_validate({"memory": "64Mi", "cpu": "500m", "openFiles": 1024})
    assert limits.memory_limit_bytes() == 64 * 1024 * 1024
    assert limits.cpu_millis() == 500
    app = design_app()
    app["spec"]["resources"] = {"limits": {"memory": "lots"}}
    assert invalid(app).field == "spec.resources.limits.memory"
    app["spec"]["resources"] = {"limits": {"memory": "1Gi", "memoryBytes": 5}}
    assert invalid(app).field == "spec.resources.limits.memory"


@pytest.mark.parametrize(
    ("text", "expected"), [("512", 512), ("1k", 1000), ("1Ki", 1024), ("1.5Gi", 3 * 2**29)]
)
def test_memory_quantities_parse_to_bytes(text: str, expected: int) -> None:
    assert parse_memory_bytes(text) == expected


@pytest.mark.parametrize(("value", "expected"), [("250m", 250), ("0.5", 500), (2, 2000)])
def test_cpu_quantities_parse_to_millicpus(value: object, expected: int) -> None:
    assert parse_cpu_millis(value) == expected


def test_bad_quantities_are_rejected() -> None:
    for bad in ("", "12Xi", "-1"):
        with pytest.raises(ValueError, match="memory"):
            parse_memory_bytes(bad)
    with pytest.raises(ValueError, match="cpu"):
        parse_cpu_millis(True)
    assert parse_duration_s("1m30s") == 90
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s("soon")


def service() -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Service",
        "metadata": {"name": "counter"},
        "spec": {
            "selector": {"app": "occupancy-counter"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            "loadBalancing": "RoundRobin",
        },
    }


def test_the_design_example_service_validates_in_the_default_namespace() -> None:
    out = registry.validate(service())
    assert out["metadata"]["namespace"] == "default"
    assert out["spec"] == service()["spec"]


def test_consistent_hash_on_a_header_needs_the_header_name() -> None:
    svc = service()
    svc["spec"]["loadBalancing"] = "ConsistentHash"
    svc["spec"]["consistentHash"] = {"key": "header"}
    assert invalid(svc).field == "spec.consistentHash.header"
    svc["spec"]["consistentHash"]["header"] = "X-Camera"
    registry.validate(svc)


def test_a_service_needs_a_selector_and_a_known_balancing_policy() -> None:
    svc = service()
    svc["spec"]["selector"] = {}
    assert invalid(svc).field == "spec.selector"
    svc = service()
    svc["spec"]["loadBalancing"] = "LeastConn"
    assert invalid(svc).field == "spec.loadBalancing"


def test_configmap_and_secret_keep_top_level_data() -> None:
    cm = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"a.yaml": "x: 1"},
        "binaryData": {"logo.png": "iVBORw0KGgo="},
    }
    assert registry.validate(cm)["data"] == {"a.yaml": "x: 1"}
    secret = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"token": "c2VjcmV0"},
        "stringData": {"password": "pw"},
    }
    out = registry.validate(secret)
    assert "type" not in out
    assert Secret.model_validate(out).type == "Opaque"
    assert secret_values(out) == {"token": b"secret", "password": b"pw"}


def test_secret_data_that_is_not_base64_names_the_key_but_not_the_value() -> None:
    secret = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"token": "not base64!!"},
    }
    err = invalid(secret)
    assert err.field == "data.token"
    assert "'token'" in err.message
    assert "not base64!!" not in err.message


def test_a_configmap_key_cannot_be_in_data_and_binary_data() -> None:
    cm = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"k": "v"},
        "binaryData": {"k": "dg=="},
    }
    assert invalid(cm).field == "binaryData.k"


def test_a_node_is_cluster_scoped_and_its_status_is_lenient() -> None:
    node = {
        "apiVersion": "edgeweave.io/v1",
        "kind": "Node",
        "metadata": {"name": "edge-1", "namespace": "default", "labels": {"role": "camera"}},
        "spec": {"unschedulable": False},
        "status": {
            "phase": "Ready",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Heartbeat"}],
            "capacity": {"cpu": 4, "memory": "8Gi"},
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
            "agentVersion": "0.1.0",
            "connectionOwner": "cloud-0",
            "futureField": {"x": 1},
        },
    }
    out = registry.validate(copy.deepcopy(node))
    assert "namespace" not in out["metadata"]
    assert out["status"] == node["status"]
    node["status"]["phase"] = "Sleeping"
    assert invalid(node).field == "status.phase"
