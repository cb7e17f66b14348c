"""Label selectors: Kubernetes matching semantics, kubectl syntax, wire form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podidentity.errors import ValidationError
from podidentity.models import LabelSelector, LabelSelectorRequirement, Operator
from tests.models.strategies import label_key, label_selector_dicts, label_value


def reference_matches(selector: dict[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes' rule, written from the API reference independently of the code under test.

    "matchLabels is a map of {key,value} pairs. A single {key,value} in the matchLabels map is
    equivalent to an element of matchExpressions, whose key field is "key", the operator is
    "In", and the values array contains only "value". The requirements are ANDed."
    In: the label is present and its value is in the set. NotIn: the label is absent or its
    value is not in the set. Exists: present. DoesNotExist: absent.
    """
    requirements = [
        {"key": k, "operator": "In", "values": [v]}
        for k, v in selector.get("matchLabels", {}).items()
    ] + list(selector.get("matchExpressions", []))
    results = []
    for req in requirements:
        present = req["key"] in labels
        value = labels.get(req["key"])
        op = req["operator"]
        if op == "In":
            results.append(present and value in set(req["values"]))
        elif op == "NotIn":
            results.append(not present or value not in set(req["values"]))
        elif op == "Exists":
            results.append(present)
        else:
            results.append(not present)
    return all(results)


@st.composite
def labels_near(draw: st.DrawFn, selector: dict[str, Any]) -> dict[str, str]:
    """Labels that reuse the selector's keys and values, so matches and misses both happen."""
    keys = list(selector.get("matchLabels", {})) + [
        e["key"] for e in selector.get("matchExpressions", [])
    ]
    values = list(selector.get("matchLabels", {}).values()) + [
        v for e in selector.get("matchExpressions", []) for v in e.get("values", [])
    ]
    key = st.sampled_from(keys) | label_key if keys else label_key
    value = st.sampled_from(values) | label_value if values else label_value
    return draw(st.dictionaries(key, value, max_size=6))


@settings(deadline=None)  # timing varies on a shared machine
@given(label_selector_dicts(), st.data())
def test_matches_like_kubernetes(selector: dict[str, Any], data: st.DataObject) -> None:
    labels = data.draw(labels_near(selector))
    assert LabelSelector.from_dict(selector).matches(labels) == reference_matches(selector, labels)


@settings(deadline=None)  # timing varies on a shared machine
@given(label_selector_dicts())
def test_string_form_round_trips(selector: dict[str, Any]) -> None:
    sel = LabelSelector.from_dict(selector)
    assert LabelSelector.parse(str(sel)) == sel


@settings(deadline=None)  # timing varies on a shared machine
@given(label_selector_dicts())
def test_wire_form_round_trips(selector: dict[str, Any]) -> None:
    sel = LabelSelector.from_dict(selector)
    assert sel.to_dict() == selector
    assert LabelSelector.from_dict(sel.to_dict()) == sel


@settings(deadline=None)  # timing varies on a shared machine
@given(st.text(max_size=40) | st.text(alphabet="ab=!(), in", max_size=30))
def test_parse_raises_only_validation_error(text: str) -> None:
    try:
        sel = LabelSelector.parse(text)
    except ValidationError as err:
        error: ValidationError | None = err
    else:
        error = None
        assert LabelSelector.parse(str(sel)) == sel
    assert error is None or "position" in error.rule


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("   ", {"a": "b"}, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {}, True),  # NotIn matches an absent key
        ("app!=web", {"app": "web"}, False),
        ("tier notin (a, b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("tier in (a,b)", {"tier": "b"}, True),
        ("tier in (a,b)", {}, False),
        ("legacy", {"legacy": ""}, True),
        ("!legacy", {"legacy": ""}, False),
        ("!legacy", {}, True),
        ("a=", {"a": ""}, True),
        ("a in ()", {"a": ""}, True),
        ("a in ()", {}, False),
        ("app=web, tier in (a,b), !legacy", {"app": "web", "tier": "a"}, True),
        ("app=web,tier in (a,b),!legacy", {"app": "web", "tier": "a", "legacy": "x"}, False),
        ("a=1,a=2", {"a": "1"}, False),
        ("example.com/team in (x)", {"example.com/team": "x"}, True),
    ],
)
def test_parse_and_match(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


def test_parse_maps_operators() -> None:
    sel = LabelSelector.parse("app=web,tier in (a,b),!legacy,x!=y,z,w notin (q)")
    assert sel.match_labels == {"app": "web"}
    assert [(r.key, r.operator, r.values) for r in sel.match_expressions] == [
        ("tier", Operator.IN, ("a", "b")),
        ("legacy", Operator.DOES_NOT_EXIST, ()),
        ("x", Operator.NOT_IN, ("y",)),
        ("z", Operator.EXISTS, ()),
        ("w", Operator.NOT_IN, ("q",)),
    ]
    assert str(sel) == "app=web,tier in (a,b),!legacy,x notin (y),z,w notin (q)"


def test_to_query() -> None:
    assert LabelSelector.parse("app=web,!x").to_query() == "labelSelector=app%3Dweb%2C%21x"
    assert LabelSelector().to_query() == ""
    assert LabelSelector().matches_everything


@pytest.mark.parametrize(
    ("text", "fragment", "position"),
    [
        ("a,", "expected a requirement after ','", 2),
        ("a b", "found 'b'", 2),
        ("a in (x y)", "expected ',' or ')'", 8),
        ("a in x", "expected '('", 5),
        ("!", "expected a label key", 1),
        ("a>1", "'>' is not supported", 1),
        ("a=b=c", "expected ',' or end of selector", 3),
        ("a=b c", "expected ',' or end of selector", 4),
        ("-a=b", "expected a label key", 0),
        ("a=-b", "expected a label value", 2),
        ("a=" + "x" * 64, "expected a label value", 2),
        (",a", "expected a label key", 0),
    ],
)
def test_parse_errors_have_positions(text: str, fragment: str, position: int) -> None:
    with pytest.raises(ValidationError) as info:
        LabelSelector.parse(text)
    assert fragment in info.value.rule
    assert info.value.rule.endswith(f"at position {position}")
    assert info.value.value == text


@pytest.mark.parametrize(
    ("kwargs", "path", "fragment"),
    [
        ({"key": "a", "operator": "In"}, "values", "non-empty for operator In"),
        ({"key": "a", "operator": "NotIn", "values": []}, "values", "non-empty"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "values", "must be empty"),
        ({"key": "a b", "operator": "Exists"}, "key", "label key"),
        ({"key": "a", "operator": "In", "values": ["x y"]}, "values[0]", "label value"),
        ({"key": "a", "operator": "Equals", "values": ["x"]}, "operator", "In, NotIn, Exists"),
        ({"key": "a", "operator": "In", "values": "xy"}, "values", "not one string"),
    ],
)
def test_invalid_requirements(kwargs: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        LabelSelectorRequirement(**kwargs)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_invalid_wire_selector_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        LabelSelector.from_dict(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}
        )
    assert info.value.path == "matchExpressions[0].values"
    with pytest.raises(ValidationError) as info:
        LabelSelector.from_dict({"matchLabels": {"a": "not valid"}})
    assert info.value.path == "matchLabels.a"


def test_parse_is_cached_and_selectors_are_hashable() -> None:
    first = LabelSelector.parse("app=web,tier in (a,b)")
    assert LabelSelector.parse("app=web,tier in (a,b)") is first
    assert len({first, LabelSelector.parse("app = web , tier in ( a , b )")}) == 1


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(ValidationError, match="expected a string"):
        LabelSelector.parse(None)  # type: ignore[arg-type]
