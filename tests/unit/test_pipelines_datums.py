"""Datums: pfs/cross/union/join/group, identity and hash, full and incremental plans."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from edgeweave.errors import PipelineError
from edgeweave.models.pipelines import Input
from edgeweave.pipelines.datums import Datum, enumerate_datums, tree_keys
from edgeweave.pipelines.incremental import plan_incremental
from edgeweave.pipelines.plan import (
    DatumHistory,
    DatumRecord,
    DatumState,
    plan_datums,
)
from edgeweave.pipelines.trees import FileTree, diff_paths

Files = dict[str, str]  # path -> content


def tree(files: Files) -> FileTree:
    return FileTree.from_entries(
        (p, hashlib.sha256(c.encode()).hexdigest(), len(c)) for p, c in files.items()
    )


def datums(spec: dict[str, Any], repos: dict[str, Files], version: str = "v1") -> list[Datum]:
    trees = {(r, "master"): tree(f) for r, f in repos.items()}
    return enumerate_datums(Input.model_validate(spec), trees, version)


def shape(ds: list[Datum]) -> list[list[tuple[str, str]]]:
    """Each datum as its (input, file path) pairs."""
    return [[(name, path) for name, path, _, _ in d.files()] for d in ds]


def history(ds: list[Datum], state: DatumState = DatumState.SUCCESS, version: str = "v1") -> Any:
    return DatumHistory(version, {d.id: DatumRecord(d.hash, state, d.identity) for d in ds})


IMAGES = {"/a.png": "A", "/b.png": "B", "/dir/c.png": "C", "/dir/d.png": "D"}


def test_a_pfs_input_yields_one_datum_per_glob_entry() -> None:
    got = shape(datums({"pfs": {"repo": "images", "glob": "/*"}}, {"images": IMAGES}))
    assert got == [
        [("images", "/a.png")],
        [("images", "/b.png")],
        [("images", "/dir/c.png"), ("images", "/dir/d.png")],
    ]
    named = datums({"pfs": {"repo": "images", "glob": "/", "name": "in"}}, {"images": IMAGES})
    assert shape(named) == [[("in", p) for p in sorted(IMAGES)]]


def test_cross_combines_every_datum_and_an_empty_member_yields_none() -> None:
    spec = {
        "cross": [
            {"pfs": {"repo": "images", "glob": "/*.png"}},
            {"pfs": {"repo": "models", "glob": "/*"}},
        ]
    }
    got = shape(datums(spec, {"images": IMAGES, "models": {"/m1": "1", "/m2": "2"}}))
    assert len(got) == 4
    assert got[0] == [("images", "/a.png"), ("models", "/m1")]
    assert got[3] == [("images", "/b.png"), ("models", "/m2")]
    assert datums(spec, {"images": IMAGES, "models": {}}) == []


def test_union_concatenates_and_counts_a_shared_datum_once() -> None:
    spec = {
        "union": [
            {"pfs": {"repo": "images", "glob": "/*.png", "name": "in"}},
            {"pfs": {"repo": "images", "glob": "/a*", "name": "in"}},
            {"pfs": {"repo": "other", "glob": "/*", "name": "in"}},
        ]
    }
    got = shape(datums(spec, {"images": IMAGES, "other": {"/a.png": "X"}}))
    assert got == [[("in", "/a.png")], [("in", "/b.png")], [("in", "/a.png")]]
    ids = [d.id for d in datums(spec, {"images": IMAGES, "other": {"/a.png": "X"}})]
    assert len(set(ids)) == 3  # the third comes from another repo: another datum


JOIN_A = {"/1.txt": "a1", "/2.txt": "a2", "/3.txt": "a3"}
JOIN_B = {"/1.csv": "b1", "/2.csv": "b2", "/4.csv": "b4"}


def join_spec(outer_a: bool = False, outer_b: bool = False) -> dict[str, Any]:
    return {
        "join": [
            {"pfs": {"repo": "a", "glob": "/(*).txt", "join_on": "$1", "outer_join": outer_a}},
            {"pfs": {"repo": "b", "glob": "/(*).csv", "join_on": "$1", "outer_join": outer_b}},
        ]
    }


def test_join_pairs_files_with_equal_keys() -> None:
    got = shape(datums(join_spec(), {"a": JOIN_A, "b": JOIN_B}))
    assert got == [[("a", "/1.txt"), ("b", "/1.csv")], [("a", "/2.txt"), ("b", "/2.csv")]]


def test_an_outer_join_member_keeps_its_unmatched_files() -> None:
    got = shape(datums(join_spec(outer_a=True), {"a": JOIN_A, "b": JOIN_B}))
    assert [("a", "/3.txt")] in got and [("b", "/4.csv")] not in got and len(got) == 3
    both = shape(datums(join_spec(True, True), {"a": JOIN_A, "b": JOIN_B}))
    assert [("a", "/3.txt")] in both and [("b", "/4.csv")] in both and len(both) == 4


def test_a_join_key_with_several_files_per_member_yields_their_cross_product() -> None:
    spec = {
        "join": [
            {"pfs": {"repo": "a", "glob": "/(*)-*", "join_on": "$1"}},
            {"pfs": {"repo": "b", "glob": "/(*)", "join_on": "$1"}},
        ]
    }
    got = shape(datums(spec, {"a": {"/k-1": "1", "/k-2": "2"}, "b": {"/k": "x"}}))
    assert got == [[("a", "/k-1"), ("b", "/k")], [("a", "/k-2"), ("b", "/k")]]


def test_group_puts_every_file_of_a_key_in_one_datum() -> None:
    spec = {
        "group": [
            {"pfs": {"repo": "sales", "glob": "/(*)/*", "group_by": "$1"}},
            {"pfs": {"repo": "returns", "glob": "/(*)-*", "group_by": "$1"}},
        ]
    }
    repos = {
        "sales": {"/s1/jan": "1", "/s1/feb": "2", "/s2/jan": "3"},
        "returns": {"/s1-a": "r", "/s3-a": "r"},
    }
    got = shape(datums(spec, repos))
    assert got == [
        [("sales", "/s1/feb"), ("sales", "/s1/jan"), ("returns", "/s1-a")],
        [("sales", "/s2/jan")],
        [("returns", "/s3-a")],
    ]


def test_the_id_follows_the_paths_and_the_hash_the_content_and_version() -> None:
    spec = {"pfs": {"repo": "images", "glob": "/*"}}
    before = datums(spec, {"images": IMAGES})
    after = datums(spec, {"images": {**IMAGES, "/dir/d.png": "changed"}})
    assert [d.id for d in before] == [d.id for d in after]
    assert [d.hash == e.hash for d, e in zip(before, after, strict=True)] == [True, True, False]
    other_version = datums(spec, {"images": IMAGES}, version="v2")
    assert all(d.hash != e.hash for d, e in zip(before, other_version, strict=True))


def test_a_cron_input_is_planned_through_its_repo_and_missing_commits_are_named() -> None:
    with pytest.raises(PipelineError, match="cron"):
        datums({"cron": {"name": "tick", "spec": "@every 60s"}}, {})
    with pytest.raises(PipelineError, match="images@master"):
        datums({"pfs": {"repo": "images", "glob": "/*"}}, {})
    spec = Input.model_validate(join_spec())
    assert tree_keys(spec) == [("a", "master"), ("b", "master")]


def test_the_full_plan_skips_unchanged_datums_and_reruns_failed_ones() -> None:
    spec = {"pfs": {"repo": "images", "glob": "/*"}}
    first = datums(spec, {"images": IMAGES})
    changed = datums(spec, {"images": {**IMAGES, "/b.png": "B2", "/e.png": "E"}})
    plan = plan_datums(changed, history(first))
    assert [d.describe() for d in plan.run] == ["images:/b.png", "images:/e.png"]
    assert (plan.skipped, plan.removed, plan.total) == (2, [], 4)
    failed = plan_datums(first, history(first, DatumState.FAILED))
    assert len(failed.run) == 3
    recovered = plan_datums(first, history(first, DatumState.RECOVERED))
    assert len(recovered.run) == 3
    assert len(plan_datums(first, history(first), every_job=True).run) == 3
    gone = plan_datums(datums(spec, {"images": {"/a.png": "A"}}), history(first))
    assert len(gone.removed) == 2 and gone.skipped == 1 and gone.run == []


def incremental(
    spec: dict[str, Any], old: dict[str, Files], new: dict[str, Files], prev: Any = None
) -> Any:
    old_trees = {(r, "master"): tree(f) for r, f in old.items()}
    new_trees = {(r, "master"): tree(f) for r, f in new.items()}
    changed = {k: diff_paths(old_trees[k], new_trees[k]) for k in old_trees}
    if prev is None:
        prev = history(enumerate_datums(Input.model_validate(spec), old_trees, "v1"))
    return plan_incremental(Input.model_validate(spec), new_trees, changed, prev, "v1")


def test_adding_one_file_plans_only_its_datum() -> None:
    spec = {"pfs": {"repo": "images", "glob": "/*"}}
    plan = incremental(spec, {"images": IMAGES}, {"images": {**IMAGES, "/new.png": "N"}})
    assert plan.incremental
    assert [d.describe() for d in plan.run] == ["images:/new.png"]
    assert (plan.skipped, plan.removed) == (3, [])


def test_modifying_a_file_in_a_directory_reruns_only_that_directory() -> None:
    spec = {"pfs": {"repo": "images", "glob": "/*"}}
    plan = incremental(spec, {"images": IMAGES}, {"images": {**IMAGES, "/dir/c.png": "C2"}})
    assert [d.describe() for d in plan.run] == ["images:/dir"]
    assert plan.skipped == 2


def test_deleting_a_file_removes_its_datum() -> None:
    spec = {"pfs": {"repo": "images", "glob": "/*"}}
    smaller = {k: v for k, v in IMAGES.items() if k != "/a.png"}
    plan = incremental(spec, {"images": IMAGES}, {"images": smaller})
    assert plan.run == [] and len(plan.removed) == 1 and plan.skipped == 2


def test_an_incremental_plan_is_refused_for_a_new_version_or_every_job() -> None:
    spec = Input.model_validate({"pfs": {"repo": "images", "glob": "/*"}})
    trees = {("images", "master"): tree(IMAGES)}
    first = enumerate_datums(spec, trees, "v1")
    assert plan_incremental(spec, trees, {}, history(first), "v2") is None
    assert plan_incremental(spec, trees, {}, history(first), "v1", every_job=True) is None
    nothing = plan_incremental(spec, trees, {}, history(first), "v1")
    assert nothing is not None and nothing.run == [] and nothing.skipped == 3


def test_an_incremental_plan_reruns_failed_and_recovered_datums() -> None:
    spec = Input.model_validate({"pfs": {"repo": "images", "glob": "/*"}})
    trees = {("images", "master"): tree(IMAGES)}
    first = enumerate_datums(spec, trees, "v1")
    prev = history(first)
    prev.record(first[2].id, DatumRecord(first[2].hash, DatumState.FAILED, first[2].identity))
    plan = plan_incremental(spec, trees, {}, prev, "v1")
    assert plan is not None and [d.describe() for d in plan.run] == ["images:/dir"]
    assert plan.run[0] == first[2] and plan.skipped == 2


COMBINED_SPECS: list[dict[str, Any]] = [
    {"pfs": {"repo": "a", "glob": "/*"}},
    {"pfs": {"repo": "a", "glob": "/*/*"}},
    {"pfs": {"repo": "a", "glob": "/**"}},
    {"pfs": {"repo": "a", "glob": "/"}},
    {"cross": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}]},
    {"union": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*/*"}}]},
    {
        "union": [
            {"pfs": {"repo": "a", "glob": "/*", "name": "in"}},
            {"pfs": {"repo": "b", "glob": "/*", "name": "in"}},
        ]
    },
    join_spec(),
    {
        "join": [
            {"pfs": {"repo": "a", "glob": "/(*)/*", "join_on": "$1", "outer_join": True}},
            {"pfs": {"repo": "b", "glob": "/(*)/*", "join_on": "$1", "outer_join": True}},
            {"pfs": {"repo": "c", "glob": "/(*)", "join_on": "$1"}},
        ]
    },
    {
        "group": [
            {"pfs": {"repo": "a", "glob": "/(*)/*", "group_by": "$1"}},
            {"pfs": {"repo": "b", "glob": "/*/(*)", "group_by": "$1"}},
        ]
    },
    {
        "cross": [
            {
                "join": [
                    {"pfs": {"repo": "a", "glob": "/(*)/*", "join_on": "$1", "outer_join": True}},
                    {"pfs": {"repo": "b", "glob": "/(*)/*", "join_on": "$1"}},
                ]
            },
            {"pfs": {"repo": "c", "glob": "/*"}},
        ]
    },
]


def random_files(rng: random.Random, base: Files | None = None) -> Files:
    files = dict(base or {})
    if base is None:
        steps = [("add", None)] * rng.randint(0, 8)
    else:
        steps = [(rng.choice(["add", "del", "mod"]), None) for _ in range(rng.randint(0, 3))]
    for op, _ in steps:
        if op == "del" and files:
            del files[rng.choice(sorted(files))]
        elif op == "mod" and files:
            files[rng.choice(sorted(files))] = rng.choice("0123")
        else:
            d, n = rng.choice(["x", "y", "w", ""]), rng.choice(["x", "y", "p", "1.txt", "1.csv"])
            files[f"/{d}/{n}" if d else f"/{n}"] = rng.choice("012")
    paths = sorted(files)
    return {p: c for p, c in files.items() if not any(q.startswith(p + "/") for q in paths)}


@pytest.mark.parametrize("seed", range(4))
def test_the_incremental_plan_agrees_with_the_full_plan(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(250):
        spec = rng.choice(COMBINED_SPECS)
        old = {r: random_files(rng) for r in "abc"}
        new = {r: random_files(rng, old[r]) for r in "abc"}
        first = datums(spec, old)
        prev = history(first)
        for d in first:  # some datums of the previous job failed or were only recovered
            if rng.random() < 0.2:
                state = rng.choice([DatumState.FAILED, DatumState.RECOVERED])
                prev.record(d.id, DatumRecord(d.hash, state, d.identity))
        inc = incremental(spec, old, new, prev)
        full = plan_datums(datums(spec, new), prev)
        assert sorted(d.id for d in inc.run) == sorted(d.id for d in full.run), (spec, old, new)
        assert sorted(inc.removed) == sorted(full.removed), (spec, old, new)
        assert inc.skipped == full.skipped, (spec, old, new)
