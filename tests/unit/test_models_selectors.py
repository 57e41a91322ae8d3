"""Label selectors: parsing every operator, matching, errors."""

from __future__ import annotations

import pytest

from edgeweave.errors import BadRequest
from edgeweave.models.selectors import MAX_SELECTOR_CHARS, LabelSelector, Requirement

LABELS = {"role": "camera", "zone": "lobby", "tier": "edge"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("role=camera", True),
        ("role==camera", True),
        ("role=sensor", False),
        ("role!=sensor", True),
        ("role!=camera", False),
        ("missing!=x", True),
        ("zone in (lobby,cafe)", True),
        ("zone in (cafe)", False),
        ("zone notin (cafe, hall)", True),
        ("zone notin (lobby)", False),
        ("missing notin (a)", True),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("role=camera,zone in (lobby),!missing", True),
        ("role=camera, tier=cloud", False),
    ],
)
def test_each_operator_matches_like_kubernetes(text: str, matches: bool) -> None:
    assert LabelSelector.parse(text).matches(LABELS) is matches


def test_an_empty_selector_matches_everything() -> None:
    for text in (None, "", "   "):
        selector = LabelSelector.parse(text)
        assert selector.empty
        assert selector.matches({}) and selector.matches(None)


def test_a_mapping_selects_by_equality() -> None:
    selector = LabelSelector.from_mapping({"role": "camera", "zone": "lobby"})
    assert selector.matches(LABELS)
    assert not selector.matches({"role": "camera"})
    assert str(selector) == "role=camera,zone=lobby"


def test_a_parsed_selector_prints_back_in_the_same_syntax() -> None:
    text = "role=camera,zone in (cafe,lobby),tier,!gpu"
    assert str(LabelSelector.parse(text)) == text
    assert LabelSelector.parse(str(LabelSelector.parse(text))) == LabelSelector.parse(text)


def test_requirements_keep_their_operator_and_values() -> None:
    (req,) = LabelSelector.parse("zone notin (a, b)").requirements
    assert req == Requirement("zone", "notin", frozenset({"a", "b"}))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("zone in (a,b", "unbalanced '('"),
        ("zone in a,b)", "unbalanced ')'"),
        ("!zone in (a)", "'!' only goes with a key"),
        ("role=camera=x", "is not one of"),
        ("role camera", "is not one of"),
    ],
)
def test_malformed_selectors_are_bad_requests_naming_the_term(text: str, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        LabelSelector.parse(text)


def test_an_overlong_selector_is_refused() -> None:
    with pytest.raises(BadRequest, match="longer than"):
        LabelSelector.parse("a=" + "b" * MAX_SELECTOR_CHARS)
