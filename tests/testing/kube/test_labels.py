"""The ``labelSelector`` parser (pure): it agrees with the models' selector where the grammars meet.

The models parse ``metav1.LabelSelector`` semantics from the same string form for the operators
both have (``=``, ``!=``, ``in``, ``notin``, ``key``, ``!key``); on those, the two must select the
same label sets. What only the query form has (``==``, ``>``, ``<``, ``in ()``) is checked by
example here and over HTTP in ``test_listoptions.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podidentity.models import LabelSelector
from podidentity.testing.kube import APIError
from podidentity.testing.kube._labels import parse_label_selector

KEYS = st.sampled_from(["app", "tier", "example.com/team", "env"])
VALUES = st.sampled_from(["web", "db", "1", "2", "prod"])


@st.composite
def requirements(draw: st.DrawFn) -> str:
    key = draw(KEYS)
    kind = draw(st.sampled_from(["=", "!=", "in", "notin", "exists", "!"]))
    if kind == "exists":
        return key
    if kind == "!":
        return f"!{key}"
    if kind in ("in", "notin"):
        values = draw(st.lists(VALUES, min_size=1, max_size=3, unique=True))
        return f"{key} {kind} ({','.join(values)})"
    return f"{key}{kind}{draw(VALUES)}"


LABEL_SETS = st.dictionaries(KEYS, VALUES, max_size=4)


@given(st.lists(requirements(), min_size=1, max_size=4), st.lists(LABEL_SETS, max_size=10))
def test_agrees_with_the_models_selector(
    parts: list[str], label_sets: list[dict[str, str]]
) -> None:
    text = ",".join(parts)
    ours = parse_label_selector(text)
    model = LabelSelector.parse(text)
    for labels in label_sets:
        assert ours(labels) == model.matches(labels), (text, labels)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("n>5", {"n": "6"}, True),
        ("n>5", {"n": "5"}, False),
        ("n<5", {"n": "-1"}, True),
        ("n<5", {"n": "x"}, False),
        ("n<5", {}, False),
        ("a==b", {"a": "b"}, True),
        ("a in ()", {"a": ""}, True),
        ("a in ()", {"a": "x"}, False),
        ("a notin ()", {"a": "x"}, True),
        ("x in (in, notin)", {"x": "notin"}, True),
        ("a=", {"a": ""}, True),
        ("", {"any": "thing"}, True),
    ],
)
def test_query_only_forms(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector)(labels) is expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        (
            "a > ",
            "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' "
            "operators, the value must be an integer",
        ),
        (
            "/a",
            'unable to parse requirement: key: Invalid value: "/a": prefix part must be non-empty',
        ),
    ],
)
def test_errors_carry_upstreams_text(selector: str, message: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_label_selector(selector)
    assert caught.value.code == 400
    assert caught.value.message == message
