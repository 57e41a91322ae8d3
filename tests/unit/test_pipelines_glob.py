"""Pachyderm glob semantics over sorted file paths (COMPAT.md §3 table and shell classes)."""

from __future__ import annotations

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.pipelines.glob import Glob, expand_template, template_groups

# the repo of the COMPAT.md table
REPO = sorted(["/foo-1", "/foo-2", "/bar/bar-1", "/bar/bar-2"])


def matched(pattern: str, paths: list[str] = REPO) -> list[str]:
    return [m.path for m in Glob(pattern).match(paths)]


def files_of(pattern: str, paths: list[str] = REPO) -> dict[str, list[str]]:
    return {m.path: paths[m.start : m.end] for m in Glob(pattern).match(paths)}


@pytest.mark.parametrize(
    ("pattern", "entries"),
    [
        ("/", ["/"]),
        ("/*", ["/bar", "/foo-1", "/foo-2"]),
        ("/*/*", ["/bar/bar-1", "/bar/bar-2"]),
        ("/bar/*", ["/bar/bar-1", "/bar/bar-2"]),
        ("/**", ["/bar/bar-1", "/bar/bar-2", "/foo-1", "/foo-2"]),
        ("/foo-?", ["/foo-1", "/foo-2"]),
        ("/foo-[1]", ["/foo-1"]),
        ("/foo-[!1]", ["/foo-2"]),
        ("/foo-[^1]", ["/foo-2"]),
        ("/[a-c]*", ["/bar"]),
        ("/{bar,foo-2}", ["/bar", "/foo-2"]),
        ("/bar", ["/bar"]),
        ("/nothing/*", []),
    ],
)
def test_the_compat_glob_table(pattern: str, entries: list[str]) -> None:
    assert matched(pattern) == entries


def test_a_directory_entry_holds_every_file_under_it_and_the_root_holds_all() -> None:
    assert files_of("/*")["/bar"] == ["/bar/bar-1", "/bar/bar-2"]
    assert files_of("/")["/"] == REPO
    assert files_of("/foo-1") == {"/foo-1": ["/foo-1"]}


def test_an_empty_repo_has_no_match_not_even_for_the_root() -> None:
    assert Glob("/").match([]) == []
    assert Glob("/*").match([]) == []


def test_star_and_question_mark_never_cross_a_slash() -> None:
    paths = sorted(["/a/b/c.txt", "/a/c.txt", "/ac.txt"])
    assert matched("/a*", paths) == ["/a", "/ac.txt"]
    assert matched("/a?c.txt", paths) == []
    assert matched("/*/*.txt", paths) == ["/a/c.txt"]
    assert matched("/*/*/*.txt", paths) == ["/a/b/c.txt"]


def test_double_star_matches_files_at_any_depth() -> None:
    paths = sorted(["/a/b/c.csv", "/a/c.csv", "/c.csv", "/a/x.txt"])
    assert matched("/**.csv", paths) == ["/a/b/c.csv", "/a/c.csv", "/c.csv"]
    assert matched("/**/c.csv", paths) == ["/a/b/c.csv", "/a/c.csv", "/c.csv"]
    assert matched("/a/**", paths) == ["/a/b/c.csv", "/a/c.csv", "/a/x.txt"]


def test_sibling_names_sorting_between_a_directory_and_its_files_stay_apart() -> None:
    # "/bar-1" and "/bar.txt" sort before "/bar/..." and "/bar0" after it
    paths = sorted(["/bar-1", "/bar.txt", "/bar/x", "/bar/y", "/bar0"])
    assert files_of("/*", paths) == {
        "/bar": ["/bar/x", "/bar/y"],
        "/bar-1": ["/bar-1"],
        "/bar.txt": ["/bar.txt"],
        "/bar0": ["/bar0"],
    }
    assert matched("/bar/*", paths) == ["/bar/x", "/bar/y"]


def test_capture_groups_come_with_each_match() -> None:
    paths = sorted(["/a/1.txt", "/b/2.txt", "/c.bin"])
    got = {m.path: m.groups for m in Glob("/(*)/(*).txt").match(paths)}
    assert got == {"/a/1.txt": ("a", "1"), "/b/2.txt": ("b", "2")}
    assert Glob("/(*)/(*).txt").group_count == 2
    assert {m.path: m.groups for m in Glob("/(*)").match(paths)} == {
        "/a": ("a",),
        "/b": ("b",),
        "/c.bin": ("c.bin",),
    }


def test_match_path_finds_the_entry_of_one_file() -> None:
    assert Glob("/*").match_path("/bar/bar-1") == ("/bar", ())
    assert Glob("/(*)/*").match_path("/bar/bar-1") == ("/bar/bar-1", ("bar",))
    assert Glob("/*/*").match_path("/foo-1") is None
    assert Glob("/").match_path("/anything") == ("/", ())


def test_escapes_and_regex_characters_are_literal() -> None:
    paths = sorted(["/a*b", "/a.b", "/axb", "/a+b"])
    assert matched("/a\\*b", paths) == ["/a*b"]
    assert matched("/a.b", paths) == ["/a.b"]
    assert matched("/a+b", paths) == ["/a+b"]


def test_patterns_are_normalised() -> None:
    assert Glob("*").pattern == "/*"
    assert Glob("/bar/").pattern == "/bar"
    assert matched("bar/*") == ["/bar/bar-1", "/bar/bar-2"]


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "may not be empty"),
        ("/[abc", "'[' without its ']'"),
        ("/(*", "'(' without its ')'"),
        ("/*)", "')' without its '('"),
        ("/{a,b", "'{' without its '}'"),
        ("/[a/b]", "'/' inside"),
        ("/a\\", "lone"),
    ],
)
def test_malformed_globs_are_refused_with_the_reason(pattern: str, problem: str) -> None:
    with pytest.raises(InvalidObject) as info:
        Glob(pattern)
    assert problem in info.value.message


def test_join_templates_read_capture_groups() -> None:
    assert template_groups("$1-$2") == [1, 2]
    assert expand_template("$2/$1", ("a", "b")) == "b/a"
    assert expand_template("$3", ("a",)) == ""
    assert expand_template("fixed", ("a",)) == "fixed"


def test_matching_a_hundred_thousand_paths() -> None:
    # how fast is measured in bench/pipelines.py, not here (a timed test fails on a busy machine)
    paths = sorted(f"/d{i % 100:03d}/f{i:06d}" for i in range(100_000))
    assert len(Glob("/*/*").match(paths)) == 100_000
    assert len(Glob("/d042/*").match(paths)) == 1_000
