"""The embedded broker's kept topic-filter patterns answer exactly as amqtt's own matching,
for filters with and without wildcards, ``$`` topics included (property-based)."""

from __future__ import annotations

from amqtt.broker import Broker
from hypothesis import given
from hypothesis import strategies as st

from edgeweave.edge.devices.broker import _Broker, _filter_matches

LEVEL = st.sampled_from(["a", "b", "$hw", "events", "device", "dev-1", "twin", "update", ""])
TOPIC = st.lists(LEVEL, min_size=1, max_size=6).map("/".join)
FILTER_LEVEL = st.one_of(LEVEL, st.just("+"))
FILTER = st.builds(
    lambda levels, hash_end: "/".join([*levels, "#"] if hash_end else levels),
    st.lists(FILTER_LEVEL, min_size=0, max_size=5),
    st.booleans(),
).filter(bool)


@given(FILTER, TOPIC)
def test_kept_patterns_match_as_amqtt_does(a_filter: str, topic: str) -> None:
    ours = _Broker._matches(None, topic, a_filter)  # type: ignore[arg-type]
    theirs = Broker._matches(None, topic, a_filter)
    assert ours == theirs


def test_examples_and_the_pattern_is_compiled_once() -> None:
    _filter_matches.cache_clear()
    assert _filter_matches("$hw/events/device/+/twin/update")("$hw/events/device/d1/twin/update")
    assert not _filter_matches("$hw/events/device/+/twin/update")("$hw/events/device/d1/x/update")
    assert _filter_matches("sport/#")("sport")  # '#' also matches the parent level
    assert _filter_matches("a/b")("a/b") and not _filter_matches("a/b")("a/b/c")
    for _ in range(3):
        _filter_matches("sport/#")("sport/tennis")
    info = _filter_matches.cache_info()
    assert (info.misses, info.hits) == (3, 5)  # three filters, each compiled once
