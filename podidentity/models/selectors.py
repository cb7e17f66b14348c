"""Kubernetes label selectors: the wire object, kubectl's string syntax, and matching.

Semantics are Kubernetes' own (``k8s.io/apimachinery/pkg/labels``): every requirement must
hold; ``NotIn`` and ``DoesNotExist`` hold when the key is absent; an empty selector matches
every set of labels. The string syntax is the one ``kubectl -l`` and ``?labelSelector=``
take: ``app=web,tier in (a,b),!legacy``. ``k!=v`` is ``k notin (v)`` and ``k in ()`` means the
single empty value, as upstream's parser has it.

A selector is checked when it is built, from code, from the wire or from text: a selector that
cannot be evaluated (``In`` without values, a key with a space) would otherwise have to be
given a made-up meaning at match time.
"""

from __future__ import annotations

import enum
import functools
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from podidentity.errors import ValidationError
from podidentity.models._frozen import FrozenDict
from podidentity.models._names import is_label_key, is_label_value
from podidentity.models._wire import (
    EnumCodec,
    Field,
    NestedList,
    Str,
    StrList,
    StrMap,
    check_extra,
    decode_struct,
    encode_struct,
    join,
)
from podidentity.models.meta import frozen_extra, frozen_str_map

__all__ = ["LabelSelector", "LabelSelectorRequirement", "Operator"]

_KEY_RULE = (
    "expected a label key (an optional DNS-1123 prefix and '/', then at most 63 "
    "letters, digits, '-', '_' or '.', starting and ending alphanumeric)"
)
_VALUE_RULE = (
    "expected a label value (empty, or at most 63 letters, digits, '-', '_' or '.', "
    "starting and ending alphanumeric)"
)


class Operator(str, enum.Enum):
    """The operator of a :class:`LabelSelectorRequirement`."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_OPERATOR_RULE = "expected In, NotIn, Exists or DoesNotExist"


def _operator(value: Operator | str) -> Operator:
    try:
        return Operator(value)
    except ValueError:
        raise ValidationError("operator", _OPERATOR_RULE, value) from None


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):  # a bare string would become a tuple of characters
        raise ValidationError("values", "expected a list of strings, not one string", value)
    return tuple(value)


@attrs.frozen(kw_only=True)
class LabelSelectorRequirement:
    """One requirement: ``key`` ``operator`` ``values``.

    ``values`` keep their order and duplicates (so the wire form round-trips) but are compared
    as a set. ``In`` and ``NotIn`` need at least one value; ``Exists`` and ``DoesNotExist`` none.

    Raises:
        ValidationError: the key, a value, or the number of values breaks Kubernetes' rules.
    """

    _fields: ClassVar[tuple[Field, ...]]

    key: str
    operator: Operator = attrs.field(converter=_operator)
    values: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "")
        if not isinstance(self.key, str) or not is_label_key(self.key):
            raise ValidationError("key", _KEY_RULE, self.key)
        for index, value in enumerate(self.values):
            if not isinstance(value, str) or not is_label_value(value):
                raise ValidationError(join("values", index), _VALUE_RULE, value)
        set_based = self.operator in (Operator.IN, Operator.NOT_IN)
        if set_based and not self.values:
            raise ValidationError(
                "values", f"must be non-empty for operator {self.operator.value}", []
            )
        if not set_based and self.values:
            raise ValidationError(
                "values", f"must be empty for operator {self.operator.value}", list(self.values)
            )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` satisfy this requirement."""
        op = self.operator
        if op is Operator.IN:
            return self.key in labels and labels[self.key] in self.values
        if op is Operator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        word = "in" if op is Operator.IN else "notin"
        return f"{self.key} {word} ({','.join(self.values)})"


LabelSelectorRequirement._fields = (
    Field("key", "key", Str(), required=True),
    Field("operator", "operator", EnumCodec(Operator, _OPERATOR_RULE), required=True),
    Field("values", "values", StrList()),
)


def _requirements(
    value: Iterable[LabelSelectorRequirement],
) -> tuple[LabelSelectorRequirement, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class LabelSelector:
    """A Kubernetes ``LabelSelector``: ``matchLabels`` and ``matchExpressions``, all must hold.

    Build one in code, from the wire (:meth:`from_dict`) or from kubectl's syntax
    (:meth:`parse`)::

        >>> sel = LabelSelector.parse("app=web,tier in (a,b),!legacy")
        >>> sel.matches({"app": "web", "tier": "a"})
        True
        >>> str(sel)
        'app=web,tier in (a,b),!legacy'

    Raises:
        ValidationError: a ``matchLabels`` key or value breaks Kubernetes' rules.
    """

    _fields: ClassVar[tuple[Field, ...]]

    match_labels: FrozenDict[str, str] = attrs.field(default=FrozenDict(), converter=frozen_str_map)
    match_expressions: tuple[LabelSelectorRequirement, ...] = attrs.field(
        default=(), converter=_requirements
    )
    extra: FrozenDict[str, Any] = attrs.field(default=FrozenDict(), converter=frozen_extra)

    def __attrs_post_init__(self) -> None:
        check_extra(self.extra, self._fields, "")
        for key, value in self.match_labels.items():
            where = join("matchLabels", key)
            if not isinstance(key, str) or not is_label_key(key):
                raise ValidationError(where, _KEY_RULE, key)
            if not isinstance(value, str) or not is_label_value(value):
                raise ValidationError(where, _VALUE_RULE, value)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse kubectl's selector syntax; ``""`` (or only spaces) matches everything.

        Supports ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``
        (exists) and ``!k`` (does not exist), separated by commas, spaces allowed between
        tokens. Results are cached, so parsing the same text again is cheap.

        Raises:
            ValidationError: with the character position of the first error.
        """
        if not isinstance(text, str):
            raise ValidationError("labelSelector", "expected a string", text)
        return _parse(text)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> LabelSelector:
        """Build from the wire form (``matchLabels``, ``matchExpressions``).

        Raises:
            ValidationError: the object does not have a selector's structure.
        """
        selector: LabelSelector = decode_struct(cls, obj, "")
        return selector

    def to_dict(self) -> dict[str, Any]:
        """The wire form; an empty selector is ``{}``."""
        return encode_struct(self)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` satisfy every label and every expression."""
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    @property
    def matches_everything(self) -> bool:
        """True for the empty selector, which every set of labels satisfies."""
        return not self.match_labels and not self.match_expressions

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        parts.extend(str(req) for req in self.match_expressions)
        return ",".join(parts)

    def to_query(self) -> str:
        """The URL query fragment for a list or watch (``labelSelector=app%3Dweb``).

        Returns ``""`` for the empty selector, which needs no parameter.
        """
        text = str(self)
        return urllib.parse.urlencode({"labelSelector": text}) if text else ""


LabelSelector._fields = (
    Field("match_labels", "matchLabels", StrMap()),
    Field("match_expressions", "matchExpressions", NestedList(LabelSelectorRequirement)),
)


# --- kubectl's string syntax -------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(!=|==|=|!|\(|\)|,|<|>)|([^\s!=(),<>]+))")
_END = "end of selector"


class _Parser:
    """A recursive-descent parser over the token list; one instance per text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, position)
        pos = 0
        while True:
            match = _TOKEN.match(text, pos)
            if match is None:
                break
            kind = "op" if match.group(1) else "id"
            start = match.start(1) if match.group(1) else match.start(2)
            self.tokens.append((kind, match.group(1) or match.group(2), start))
            pos = match.end()
        self.tokens.append(("end", "", len(text.rstrip())))
        self.index = 0

    def fail(self, rule: str, position: int | None = None) -> ValidationError:
        at = self.tokens[self.index][2] if position is None else position
        return ValidationError("labelSelector", f"{rule} at position {at}", self.text)

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def describe(self) -> str:
        kind, text, _ = self.peek()
        return _END if kind == "end" else repr(text)

    def key(self) -> str:
        kind, text, _ = self.peek()
        if kind != "id":
            raise self.fail(f"expected a label key, found {self.describe()}")
        if not is_label_key(text):
            raise self.fail(f"{_KEY_RULE}, found {text!r}")
        self.take()
        return text

    def value(self) -> str:
        """An identifier, or nothing (the empty value) before ``,`` ``)`` or the end."""
        kind, text, _ = self.peek()
        if (kind == "op" and text in (",", ")")) or kind == "end":
            return ""
        if kind != "id":
            raise self.fail(f"expected a label value, found {self.describe()}")
        if not is_label_value(text):
            raise self.fail(f"{_VALUE_RULE}, found {text!r}")
        self.take()
        return text

    def values(self) -> tuple[str, ...]:
        if self.peek()[:2] != ("op", "("):
            raise self.fail(f"expected '(', found {self.describe()}")
        self.take()
        found = [self.value()]
        while self.peek()[:2] == ("op", ","):
            self.take()
            found.append(self.value())
        if self.peek()[:2] != ("op", ")"):
            raise self.fail(f"expected ',' or ')', found {self.describe()}")
        self.take()
        return tuple(found)

    def parse(self) -> LabelSelector:
        labels: dict[str, str] = {}
        expressions: list[LabelSelectorRequirement] = []
        if self.peek()[0] == "end":
            return LabelSelector()
        while True:
            kind, text, _ = self.peek()
            if (kind, text) == ("op", "!"):
                self.take()
                expressions.append(
                    LabelSelectorRequirement(key=self.key(), operator=Operator.DOES_NOT_EXIST)
                )
            else:
                key = self.key()
                kind, text, _ = self.peek()
                if kind == "end" or (kind, text) == ("op", ","):
                    expressions.append(LabelSelectorRequirement(key=key, operator=Operator.EXISTS))
                elif (kind, text) in (("op", "="), ("op", "==")):
                    self.take()
                    value = self.value()
                    if labels.setdefault(key, value) != value:  # k=a,k=b: keep both rules
                        expressions.append(
                            LabelSelectorRequirement(key=key, operator=Operator.IN, values=[value])
                        )
                elif (kind, text) == ("op", "!="):
                    self.take()
                    expressions.append(
                        LabelSelectorRequirement(
                            key=key, operator=Operator.NOT_IN, values=[self.value()]
                        )
                    )
                elif kind == "id" and text in ("in", "notin"):
                    self.take()
                    op = Operator.IN if text == "in" else Operator.NOT_IN
                    expressions.append(
                        LabelSelectorRequirement(key=key, operator=op, values=self.values())
                    )
                elif (kind, text) in (("op", "<"), ("op", ">")):
                    raise self.fail(f"operator {text!r} is not supported in label selectors")
                else:
                    raise self.fail(
                        "expected '=', '==', '!=', 'in', 'notin', ',' or end of selector, "
                        f"found {self.describe()}"
                    )
            kind, text, _ = self.take()
            if kind == "end":
                return LabelSelector(match_labels=labels, match_expressions=expressions)
            if (kind, text) != ("op", ","):
                self.index -= 1
                raise self.fail(f"expected ',' or end of selector, found {self.describe()}")
            if self.peek()[0] == "end":
                raise self.fail("expected a requirement after ','")


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> LabelSelector:
    return _Parser(text).parse()
