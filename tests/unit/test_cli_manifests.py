"""Reading manifests: YAML streams, JSON lists, List kinds, directories, and error locations."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edgeweave.cli.manifests import parse_text, read_sources
from edgeweave.errors import ConfigError, InvalidObject

TWO_DOCS = """\
# leading comment
apiVersion: edgeweave.io/v1
kind: App
metadata: {name: a}
---
---
apiVersion: edgeweave.io/v1
kind: Service
metadata: {name: b}
"""


def test_multi_document_yaml_gives_each_object_with_its_start_line() -> None:
    docs = parse_text(TWO_DOCS, "m.yaml")
    assert [d.obj["metadata"]["name"] for d in docs] == ["a", "b"]
    assert [d.line for d in docs] == [2, 7]
    assert docs[1].where == "m.yaml:7"


def test_json_list_and_list_kind_expand_to_their_items() -> None:
    as_list = parse_text('[{"kind": "App", "metadata": {"name": "a"}}, {"kind": "App"}]', "x")
    assert len(as_list) == 2
    wrapped = parse_text(
        '  {"kind": "List", "items": [{"kind": "App", "metadata": {"name": "c"}}]}', "y.json"
    )
    assert [d.obj["metadata"]["name"] for d in wrapped] == ["c"]


def test_yaml_list_kind_expands_too() -> None:
    docs = parse_text("kind: List\nitems:\n- {kind: App}\n- {kind: Service}\n", "l.yaml")
    assert [d.obj["kind"] for d in docs] == ["App", "Service"]


def test_bad_yaml_names_file_and_line() -> None:
    text = "apiVersion: v1\nkind: App\nmetadata:\n  name: x\n  labels: a: b\n"
    with pytest.raises(InvalidObject) as info:
        parse_text(text, "examples/bad.yaml")
    # libyaml says "... allowed in this context", the pure-Python parser "... allowed here"
    assert str(info.value).startswith("examples/bad.yaml:5: mapping values are not allowed")


def test_bad_json_names_file_and_line() -> None:
    with pytest.raises(InvalidObject, match=r"^b.json:2: "):
        parse_text('{"kind": "App",\n "x": }', "b.json")


def test_a_scalar_document_is_rejected_with_its_location() -> None:
    with pytest.raises(InvalidObject, match=r"s.yaml:1: expected an object"):
        parse_text("just a string\n", "s.yaml")


def test_directory_applies_manifest_files_sorted_by_name(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: B\n")
    (tmp_path / "a.json").write_text('{"kind": "A"}')
    (tmp_path / "c.yml").write_text("kind: C\n")
    (tmp_path / "notes.txt").write_text("kind: Ignored\n")
    docs = read_sources([str(tmp_path)])
    assert [d.obj["kind"] for d in docs] == ["A", "B", "C"]
    assert docs[0].source == str(tmp_path / "a.json")


def test_stdin_and_missing_files() -> None:
    docs = read_sources(["-"], stdin=io.StringIO("kind: App\n"))
    assert docs[0].source == "<stdin>"
    with pytest.raises(ConfigError, match="no such file"):
        read_sources(["/nonexistent/x.yaml"])
