"""``labelSelector`` query strings, parsed as ``k8s.io/apimachinery/pkg/labels.Parse`` does.

This is a different grammar from :class:`podidentity.models.selectors.LabelSelector` (the
``matchLabels``/``matchExpressions`` object of CRDs): the query string form also has ``!key``,
``==``, and the integer comparisons ``key>N`` / ``key<N``, ``in ()`` means "the empty value"
(upstream turns ``()`` into the set ``{""}``), and its errors have their own texts, which
clients show verbatim. Lexer, grammar and messages follow upstream's ``selector.go``; keys and
values are validated with the same texts as object labels (:mod:`._validation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from podidentity.models._names import (
    is_dns1123_subdomain,
    is_qualified_name_part,
)

from ._errors import APIError
from ._validation import _LABEL_VALUE_MSG, _NAME_PART_MSG, _SUBDOMAIN_MSG, _quote

__all__ = ["parse_label_selector"]

_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")
_SYMBOLS = {"!", "!=", "=", "==", ">", "<", "(", ")", ","}
_KEYWORDS = {"in", "notin"}
_BINARY = ("in", "notin", "=", "==", "!=", "gt", "lt")
_IDENT, _END = "id", "end"

Matcher = Callable[[Mapping[str, str]], bool]


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal): kind is a symbol, a keyword, ``id`` or ``end``."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append((_END, ""))
            return tokens
        if text[i] in _SPECIAL:
            # The longest run of symbol characters that is a token, as upstream scans it.
            j, best = i, ""
            while j < n and text[j] in _SPECIAL:
                if text[i : j + 1] in _SYMBOLS:
                    best = text[i : j + 1]
                elif best:
                    break
                j += 1
            tokens.append((best, best))
            i += len(best)
            continue
        j = i
        while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
            j += 1
        word = text[i:j]
        tokens.append((word if word in _KEYWORDS else _IDENT, word))
        i = j


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.position = 0

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        kind, literal = self.tokens[self.position]
        # In value context "in" and "notin" are plain identifiers ("x in (in)").
        return (_IDENT if values and kind in _KEYWORDS else kind), literal

    def consume(self, values: bool = True) -> tuple[str, str]:
        token = self.lookahead(values)
        self.position += 1
        return token

    def parse(self) -> list[tuple[str, str, list[str]]]:
        requirements = []
        while True:
            kind, literal = self.lookahead()
            if kind in (_IDENT, "!"):
                try:
                    requirements.append(self.requirement())
                except ValueError as err:
                    raise ValueError(f"unable to parse requirement: {err}") from err
                kind, literal = self.consume()
                if kind == _END:
                    return requirements
                if kind != ",":
                    raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
                kind, literal = self.lookahead()
                if kind not in (_IDENT, "!"):
                    raise ValueError(f"found '{literal}', expected: identifier after ','")
            elif kind == _END:
                return requirements
            else:
                raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> tuple[str, str, list[str]]:
        kind, key = self.consume()
        operator = ""
        if kind == "!":
            operator = "!"
            kind, key = self.consume()
        if kind != _IDENT:
            raise ValueError(f"found '{key}', expected: identifier")
        if operator == "!" or self.lookahead()[0] in (_END, ","):
            return _requirement(key, operator or "exists", [])
        kind, literal = self.consume(values=False)
        if kind in ("in", "notin"):
            return _requirement(key, kind, self.values())
        if kind in ("=", "==", "!=", ">", "<"):
            return _requirement(key, kind, self.exact_value())
        raise ValueError(f"found '{literal}', expected: {', '.join(_BINARY)}")

    def values(self) -> list[str]:
        kind, literal = self.consume()
        if kind != "(":
            raise ValueError(f"found '{literal}' expected: '('")
        kind, literal = self.lookahead()
        if kind == ")":
            self.consume()
            return [""]  # upstream: "()" is the set holding the empty value
        if kind not in (_IDENT, ","):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        found = self.identifiers()
        if self.consume()[0] != ")":
            raise ValueError(f"found '{literal}', expected: ')'")
        return found

    def identifiers(self) -> list[str]:
        found: list[str] = []
        while True:
            kind, literal = self.consume()
            if kind == _IDENT:
                found.append(literal)
                following, text = self.lookahead()
                if following == ",":
                    continue
                if following == ")":
                    return found
                raise ValueError(f"found '{text}', expected: ',' or ')'")
            if kind == ",":
                if not found:
                    found.append("")  # "(,"
                following, _ = self.lookahead()
                if following == ")":
                    found.append("")  # ",)"
                    return found
                if following == ",":
                    self.consume()
                    found.append("")  # ",,"
                continue
            raise ValueError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> list[str]:
        kind, _ = self.lookahead()
        if kind in (_END, ","):
            return [""]
        kind, literal = self.consume()
        if kind == _IDENT:
            return [literal]
        raise ValueError(f"found '{literal}', expected: identifier")


def _key_details(key: str) -> list[str]:
    parts = key.split("/")
    details: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name"
            + _NAME_PART_MSG[len("name part") :]
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            details.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                details.append("prefix part must be no more than 253 characters")
            if not is_dns1123_subdomain(prefix, limit=None):
                details.append("prefix part " + _SUBDOMAIN_MSG)
    if not name:
        details.append("name part must be non-empty")
    elif len(name) > 63:
        details.append("name part must be no more than 63 characters")
    if not is_qualified_name_part(name, limit=None):
        details.append(_NAME_PART_MSG)
    return details


def _requirement(key: str, operator: str, values: list[str]) -> tuple[str, str, list[str]]:
    """Validate as ``labels.NewRequirement`` does; the errors aggregate as upstream's."""
    errors: list[str] = []
    details = _key_details(key)
    if details:
        errors.append(f"key: Invalid value: {_quote(key)}: {'; '.join(details)}")
    if operator in (">", "<"):
        for index, value in enumerate(values):
            try:
                int(value, 10)
            except ValueError:
                errors.append(
                    f"values[{index}]: Invalid value: {_quote(value)}: for 'Gt', 'Lt' operators, "
                    "the value must be an integer"
                )
    for index, value in enumerate(values):
        problems = []
        if len(value) > 63:
            problems.append("must be no more than 63 characters")
        if value and not is_qualified_name_part(value, limit=None):
            problems.append(_LABEL_VALUE_MSG)
        if problems:
            errors.append(f"values[{index}]: Invalid value: {_quote(value)}: {'; '.join(problems)}")
    if errors:
        raise ValueError(errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]")
    return key, operator, values


def _matcher(key: str, operator: str, values: list[str]) -> Matcher:
    wanted = set(values)
    if operator == "exists":
        return lambda labels: key in labels
    if operator == "!":
        return lambda labels: key not in labels
    if operator == "in":
        return lambda labels: key in labels and labels[key] in wanted
    if operator == "notin":
        return lambda labels: key not in labels or labels[key] not in wanted
    if operator in ("=", "=="):
        return lambda labels: key in labels and labels[key] == values[0]
    if operator == "!=":
        return lambda labels: key not in labels or labels[key] != values[0]
    bound = int(values[0])

    def compare(labels: Mapping[str, str]) -> bool:
        try:
            have = int(labels[key], 10)
        except (KeyError, ValueError):
            return False
        return have > bound if operator == ">" else have < bound

    return compare


def parse_label_selector(text: str) -> Matcher:
    """A predicate over an object's labels for ``labelSelector=text``.

    Raises:
        APIError: 400 with upstream's parse error (``unable to parse requirement: ...``).
    """
    try:
        requirements = _Parser(text).parse()
    except ValueError as err:
        raise APIError.bad_request(str(err)) from err
    matchers = [_matcher(*requirement) for requirement in requirements]
    return lambda labels: all(match(labels) for match in matchers)
