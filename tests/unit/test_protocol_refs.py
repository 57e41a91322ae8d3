"""ResourceRef, Versioned and held_digest (docs/design/edge-link.md §3)."""

from __future__ import annotations

import hashlib
import random

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.protocol.refs import ResourceRef, Versioned, held_digest

HELD = [
    Versioned(ResourceRef("App", "default", "a"), 3),
    Versioned(ResourceRef("ConfigMap", "default", "c"), 7),
    Versioned(ResourceRef("Node", "", "n1"), 2),
]


def test_resource_ref_is_frozen_and_hashable() -> None:
    ref = ResourceRef("App", "default", "a")
    assert ref == ResourceRef(kind="App", namespace="default", name="a")
    assert len({ref, ResourceRef("App", "default", "a")}) == 1
    with pytest.raises(AttributeError):
        ref.name = "b"  # type: ignore[misc]


def test_resource_ref_of_reads_kind_and_metadata() -> None:
    obj = {"kind": "App", "metadata": {"name": "a", "namespace": "default"}, "spec": {}}
    assert ResourceRef.of(obj) == ResourceRef("App", "default", "a")


def test_resource_ref_of_cluster_scoped_object_has_empty_namespace() -> None:
    assert ResourceRef.of({"kind": "Node", "metadata": {"name": "n1"}}) == ResourceRef(
        "Node", "", "n1"
    )


@pytest.mark.parametrize(
    "obj",
    [{}, {"kind": "App"}, {"kind": "App", "metadata": {}}, {"metadata": {"name": "a"}}],
)
def test_resource_ref_of_incomplete_object_is_invalid(obj: dict[str, object]) -> None:
    with pytest.raises(InvalidObject, match="no"):
        ResourceRef.of(obj)


def test_resource_ref_str_is_readable() -> None:
    assert str(ResourceRef("App", "default", "a")) == "App default/a"
    assert str(ResourceRef("Node", "", "n1")) == "Node n1"


def test_held_digest_has_the_documented_value() -> None:
    text = "App/default/a=3\nConfigMap/default/c=7\nNode//n1=2\n"
    expected = "68dc06efa43ec8fa3974637f318723e817ed6a22cb3d24e43812ff3a26af2b20"
    assert hashlib.sha256(text.encode()).hexdigest() == expected
    assert held_digest(HELD) == expected


def test_held_digest_does_not_depend_on_order() -> None:
    shuffled = list(HELD)
    random.Random(4).shuffle(shuffled)
    assert held_digest(shuffled) == held_digest(HELD)
    assert held_digest(reversed(HELD)) == held_digest(HELD)


def test_held_digest_changes_with_rv_and_empty_set_is_sha256_of_nothing() -> None:
    bumped = [*HELD[:2], Versioned(ResourceRef("Node", "", "n1"), 3)]
    assert held_digest(bumped) != held_digest(HELD)
    assert held_digest([]) == hashlib.sha256(b"").hexdigest()
