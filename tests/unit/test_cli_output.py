"""Rendering: ages, JSONPath cells, kubectl-like tables, JSON and YAML."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml

from edgeweave.cli.get import print_objects
from edgeweave.cli.output import (
    as_list,
    cell,
    column_path,
    format_age,
    object_age,
    render_table,
    table_headers,
    table_row,
)
from edgeweave.client.discovery import Column, KindRef

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NODE = {
    "apiVersion": "edgeweave.io/v1",
    "kind": "Node",
    "metadata": {"name": "edge-1", "creationTimestamp": "2024-05-01T11:57:00Z"},
    "status": {"phase": "Ready", "addresses": [{"address": "10.0.0.5"}]},
}
REF = KindRef(
    "Node",
    "edgeweave.io",
    "v1",
    "nodes",
    "node",
    namespaced=False,
    columns=(Column("Status", ".status.phase"),),
    wide_columns=(Column("Address", "{.status.addresses[0].address}"),),
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (5, "5s"),
        (59, "59s"),
        (180, "3m"),
        (7200, "2h"),
        (4 * 86400, "4d"),
        (800 * 86400, "2y"),
        (-3, "0s"),
    ],
)
def test_age_is_short_like_kubectl(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


def test_object_age_reads_creation_timestamp() -> None:
    assert object_age(NODE, NOW) == "3m"
    assert object_age({"metadata": {}}, NOW) == "<none>"


def test_column_paths_and_cells() -> None:
    assert column_path("{.status.addresses[0].address}") == "status.addresses[0].address"
    assert column_path(".status.phase") == "status.phase"
    assert column_path("status.phase") == "status.phase"
    missing = KindRef("Node", "g", "v1", "nodes", "node", columns=(Column("X", ".spec.nothing"),))
    assert table_row(NODE, missing.columns, False, NOW)[1] == "<none>"
    assert cell(None) == "<none>"
    assert cell(["a", "b"]) == "a,b"
    assert cell({"role": "camera"}) == "role=camera"
    assert cell(True) == "true"


def test_table_aligns_columns_with_three_spaces() -> None:
    rows = [table_headers(REF.columns, False), table_row(NODE, REF.columns, False, NOW)]
    assert render_table(rows).splitlines() == [
        "NAME     STATUS   AGE",
        "edge-1   Ready    3m",
    ]


def test_an_age_column_from_discovery_is_rendered_as_an_age_once() -> None:
    columns = (Column("Status", "status.phase"), Column("Age", "metadata.creationTimestamp"))
    assert table_headers(columns, False) == ["NAME", "STATUS", "AGE"]
    assert table_row(NODE, columns, False, NOW) == ["edge-1", "Ready", "3m"]


def test_all_namespaces_puts_namespace_first() -> None:
    obj = {"metadata": {"name": "a", "namespace": "prod"}}
    assert table_headers((), True) == ["NAMESPACE", "NAME", "AGE"]
    assert table_row(obj, (), True, NOW) == ["prod", "a", "<none>"]


def test_get_prints_table_wide_json_and_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    print_objects(REF, [NODE], "table", False)
    assert capsys.readouterr().out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    print_objects(REF, [NODE], "wide", False)
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["edge-1", "Ready", "10.0.0.5"]
    print_objects(REF, [NODE], "json", False, single=True)
    assert json.loads(capsys.readouterr().out)["metadata"]["name"] == "edge-1"
    print_objects(REF, [NODE, NODE], "json", False, "7")
    listed = json.loads(capsys.readouterr().out)
    assert listed == as_list([NODE, NODE], "7")
    print_objects(REF, [NODE], "yaml", False)
    assert yaml.safe_load(capsys.readouterr().out)["items"][0]["status"]["phase"] == "Ready"
    print_objects(REF, [NODE], "name", False)
    assert capsys.readouterr().out == "node.edgeweave.io/edge-1\n"
