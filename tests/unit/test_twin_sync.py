"""The conflict rule after a partition (COMPAT.md §2): desired -> cloud wins, reported -> edge
wins, versions tell a true concurrent edit (a visible ConflictEvent) from a stale one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgeweave.protocol.refs import ResourceRef
from edgeweave.twin.errors import TwinError
from edgeweave.twin.messages import MsgTwin, TwinUpdate, TwinValue, Versions
from edgeweave.twin.state import (
    DeviceTwin,
    PropertyTwin,
    apply_cloud_desired,
    apply_local_desired,
    apply_update,
    changes,
    define_property,
)
from edgeweave.twin.sync import ConflictEvent, merge, order

NOW = 1_700_000_000_000
THERMO = ResourceRef("Device", "default", "thermo-1")


def synced() -> DeviceTwin:
    """The twin both sides held when the partition began: target 30 desired, 30 reported."""
    twin = define_property(DeviceTwin(THERMO), "target", "int")
    twin = apply_cloud_desired(twin, {"target": "30"}, event_id="s", now_ms=NOW).twin
    return reported(twin, "30")


def cloud_sets(twin: DeviceTwin, value: str) -> DeviceTwin:
    return apply_cloud_desired(twin, {"target": value}, event_id="c", now_ms=NOW + 10).twin


def edge_sets(twin: DeviceTwin, value: str) -> DeviceTwin:
    return apply_local_desired(twin, {"target": value}, event_id="l", now_ms=NOW + 20).twin


def reported(twin: DeviceTwin, value: str) -> DeviceTwin:
    update = TwinUpdate("r", None, {"target": MsgTwin(actual=TwinValue(value))})
    return apply_update(twin, update, NOW + 30).twin


def target(twin: DeviceTwin) -> PropertyTwin:
    return twin.properties["target"]


def expected_of(twin: DeviceTwin) -> str | None:
    value = target(twin).expected
    return value.value if value is not None else None


def actual_of(twin: DeviceTwin) -> str | None:
    value = target(twin).actual
    return value.value if value is not None else None


@pytest.mark.parametrize(
    ("cloud", "edge", "relation"),
    [
        (Versions(1, 1), Versions(1, 1), "equal"),
        (Versions(2, 1), Versions(1, 1), "cloud_newer"),
        (Versions(1, 2), Versions(1, 1), "cloud_newer"),
        (Versions(1, 2), Versions(1, 3), "edge_newer"),
        (Versions(2, 1), Versions(1, 2), "concurrent"),
        (Versions(1, 2), Versions(2, 1), "concurrent"),
    ],
)
def test_versions_are_ordered_like_vector_clocks(
    cloud: Versions, edge: Versions, relation: str
) -> None:
    assert order(cloud, edge) == relation


def test_nothing_changed_on_either_side_merges_to_the_same_twin_without_conflicts() -> None:
    merged, conflicts = merge(synced(), synced())
    assert merged == synced()
    assert conflicts == []


def test_a_cloud_only_desired_change_reaches_the_edge() -> None:
    base = synced()
    merged, conflicts = merge(cloud_sets(base, "25"), base)
    assert expected_of(merged) == "25"
    assert target(merged).expected_version == Versions(2, 0)
    assert conflicts == []


def test_an_edge_only_local_desired_change_survives_and_reaches_the_cloud() -> None:
    base = synced()
    merged, conflicts = merge(base, edge_sets(base, "22"))
    assert expected_of(merged) == "22"
    assert target(merged).expected_version == Versions(1, 1)
    assert conflicts == []


def test_desired_changed_on_both_sides_keeps_the_clouds_and_reports_a_conflict() -> None:
    base = synced()
    merged, conflicts = merge(cloud_sets(base, "25"), edge_sets(base, "22"))
    assert expected_of(merged) == "25"
    assert target(merged).expected_version == Versions(2, 1)
    assert conflicts == [
        ConflictEvent(
            device=THERMO,
            property="target",
            field="expected",
            cloud_value="25",
            edge_value="22",
            cloud_version=Versions(2, 0),
            edge_version=Versions(1, 1),
            winner="cloud",
        )
    ]
    text = conflicts[0].message()
    assert "'25'" in text
    assert "'22'" in text
    assert "cloud" in text


def test_both_sides_writing_the_same_desired_value_is_no_conflict() -> None:
    base = synced()
    merged, conflicts = merge(cloud_sets(base, "25"), edge_sets(base, "25"))
    assert conflicts == []
    assert target(merged).expected_version == Versions(2, 1)


def test_reported_values_made_offline_win_over_the_clouds_older_copy() -> None:
    base = synced()
    edge = reported(reported(base, "29"), "28")
    merged, conflicts = merge(base, edge)
    assert actual_of(merged) == "28"
    assert target(merged).actual_version == Versions(0, 3)
    assert conflicts == []


def test_reported_values_changed_on_both_sides_keep_the_edges_and_report_a_conflict() -> None:
    base = synced()
    cloud = PropertyTwin(
        type="int",
        expected=target(base).expected,
        expected_version=target(base).expected_version,
        actual=TwinValue("99", NOW),
        actual_version=target(base).actual_version.bump_cloud(),
    )
    cloud_twin = DeviceTwin(THERMO, {"target": cloud})
    merged, conflicts = merge(cloud_twin, reported(base, "28"))
    assert actual_of(merged) == "28"
    assert [(c.field, c.winner, c.cloud_value, c.edge_value) for c in conflicts] == [
        ("actual", "edge", "99", "28")
    ]


def test_a_stale_edge_desired_value_is_replaced_without_a_conflict() -> None:
    base = synced()
    newer = cloud_sets(cloud_sets(base, "25"), "26")
    stale_edge = cloud_sets(base, "25")  # the edge saw the first change, not the second
    merged, conflicts = merge(newer, stale_edge)
    assert expected_of(merged) == "26"
    assert conflicts == []


def test_a_stale_cloud_copy_of_reported_values_is_replaced_without_a_conflict() -> None:
    base = synced()
    cloud_copy = reported(base, "29")  # an earlier report the cloud received
    merged, conflicts = merge(cloud_copy, reported(reported(base, "29"), "27"))
    assert actual_of(merged) == "27"
    assert conflicts == []


def test_a_stale_update_replayed_after_the_merge_changes_nothing() -> None:
    base = synced()
    merged, _ = merge(cloud_sets(base, "25"), edge_sets(base, "22"))
    again, conflicts = merge(merged, edge_sets(base, "22"))
    assert expected_of(again) == "25"
    assert conflicts == []


def test_desired_and_reported_conflicts_are_each_reported() -> None:
    base = synced()
    cloud = cloud_sets(base, "25")
    cloud = DeviceTwin(
        THERMO,
        {
            "target": PropertyTwin(
                type="int",
                expected=target(cloud).expected,
                expected_version=target(cloud).expected_version,
                actual=TwinValue("99"),
                actual_version=target(cloud).actual_version.bump_cloud(),
            )
        },
    )
    edge = reported(edge_sets(base, "22"), "23")
    _, conflicts = merge(cloud, edge)
    assert sorted((c.field, c.winner) for c in conflicts) == [
        ("actual", "edge"),
        ("expected", "cloud"),
    ]


def test_equal_versions_with_different_values_are_reported_as_diverged() -> None:
    base = synced()
    odd = DeviceTwin(
        THERMO,
        {
            "target": PropertyTwin(
                type="int",
                expected=TwinValue("11"),
                expected_version=target(base).expected_version,
                actual=target(base).actual,
                actual_version=target(base).actual_version,
            )
        },
    )
    merged, conflicts = merge(base, odd)
    assert target(merged).expected == target(base).expected
    assert [(c.kind, c.winner) for c in conflicts] == [("diverged", "cloud")]


def test_properties_known_to_one_side_only_are_kept() -> None:
    base = synced()
    cloud = define_property(base, "mode", "string")
    edge = apply_update(
        base, TwinUpdate("r", None, {"humidity": MsgTwin(actual=TwinValue("40"))}), NOW
    ).twin
    merged, conflicts = merge(cloud, edge)
    assert set(merged.properties) == {"target", "mode", "humidity"}
    assert conflicts == []


def test_a_cloud_deletion_wins_over_an_edge_report() -> None:
    base = synced()
    cloud = apply_cloud_desired(base, {"target": None}, event_id="d", now_ms=NOW).twin
    merged, _ = merge(cloud, reported(base, "28"))
    assert target(merged).deleted
    assert "target" not in merged.twin_map()


def test_device_state_comes_from_the_edge() -> None:
    edge = replace(synced(), state="online", last_online_ms=NOW)
    merged, _ = merge(synced(), edge)
    assert merged.state == "online"
    assert merged.last_online_ms == NOW


def test_twins_of_different_devices_cannot_be_merged() -> None:
    other = DeviceTwin(ResourceRef("Device", "default", "other"))
    with pytest.raises(TwinError) as caught:
        merge(synced(), other)
    assert caught.value.code == 500


def test_after_a_merge_the_edge_tells_its_mapper_the_new_desired_value() -> None:
    base = synced()
    merged, _ = merge(cloud_sets(base, "25"), base)
    change = changes(base, merged, event_id="m", now_ms=NOW)
    assert change.delta is not None
    assert change.delta.delta == {"target": "25"}
    assert change.document is not None
    assert set(change.document.twin) == {"target"}
