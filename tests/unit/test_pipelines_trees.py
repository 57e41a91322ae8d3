"""File trees: path normalisation, directory ranges, differences between two trees."""

from __future__ import annotations

import pytest

from edgeweave.errors import InvalidObject
from edgeweave.pipelines.trees import FileTree, diff_paths, normalize_dir, normalize_path


def test_paths_are_normalised_and_bad_ones_refused() -> None:
    assert normalize_path("a//b/") == "/a/b"
    assert normalize_dir("/") == "/" and normalize_dir("d/") == "/d"
    for bad in ("/", "", "/a/../b", "/./a", "/a\x00b", "/" + "x" * 5000):
        with pytest.raises(InvalidObject):
            normalize_path(bad)


def test_a_directory_is_a_contiguous_range_of_sorted_paths() -> None:
    tree = FileTree.from_entries(
        [("/bar/y", "2", 2), ("/bar-1", "1", 1), ("/bar/x", "3", 3), ("/bar0", "4", 4)]
    )
    assert tree.paths == ["/bar-1", "/bar/x", "/bar/y", "/bar0"]
    lo, hi = tree.dir_range("/bar")
    assert tree.paths[lo:hi] == ["/bar/x", "/bar/y"]
    assert tree.dir_range("/") == (0, 4)
    assert tree.digest_of("/bar/x") == "3" and tree.digest_of("/nope") is None
    assert tree.total_size() == 10


def test_diff_lists_added_removed_and_changed_paths() -> None:
    old = FileTree.from_entries([("/a", "1", 1), ("/b", "2", 1), ("/c", "3", 1)])
    new = FileTree.from_entries([("/b", "2", 1), ("/c", "9", 1), ("/d", "4", 1)])
    assert diff_paths(old, new) == ["/a", "/c", "/d"]
    assert diff_paths(new, new) == []
    assert diff_paths(FileTree(), new) == ["/b", "/c", "/d"]
