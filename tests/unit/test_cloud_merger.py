"""The Merger's completion conditions (pure: no store, no sockets)."""

from __future__ import annotations

import pytest

from edgeweave.cloud.pipelines.merger import check_completion, is_complete
from edgeweave.errors import InvalidObject


def test_all_sources_count_and_timeout_decide_completion() -> None:
    sources = ["a", "b"]
    one = {"a": {"commit": "c1", "time": 100.0}}
    both = {**one, "b": {"commit": "c2", "time": 105.0}}
    every = check_completion({"complete": {"sources": "all"}})
    assert not is_complete(every, sources, one, 200.0)
    assert is_complete(every, sources, both, 200.0)
    assert check_completion(None) == every  # the default
    assert is_complete({"count": 1}, sources, one, 100.0)
    timeout = check_completion({"complete": {"timeoutSeconds": 30}})
    assert not is_complete(timeout, sources, one, 120.0)
    assert is_complete(timeout, sources, one, 131.0)
    assert not is_complete(every, sources, {}, 200.0)


@pytest.mark.parametrize(
    "settings",
    [{"complete": {"count": 0}}, {"complete": {"sources": "some"}}, {"keyBy": "node"}, "all"],
)
def test_malformed_completion_conditions_are_refused(settings: object) -> None:
    with pytest.raises(InvalidObject, match="merger"):
        check_completion(settings)
