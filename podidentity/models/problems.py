"""Findings of the semantic checks: ``model.problems()`` returns a list of :class:`Problem`.

Semantic checks are kept apart from parsing on purpose. Upstream's own examples carry
placeholders (``CLIENT_ID``) and names like ``demo_aks_pod_id``; a parser that refused them
would refuse the manifests people start from. Parsing accepts anything with the right shape;
``problems()`` then says, per field path, what will not work and how to fix it.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["Problem", "Severity"]


class Severity(str, enum.Enum):
    """How bad a finding is."""

    ERROR = "error"
    """The object will not work as written (no pod will get a token from it)."""
    WARNING = "warning"
    """The object works, but probably not as intended."""


@attrs.frozen(kw_only=True)
class Problem:
    """One finding about one field.

    Attributes:
        path: the field path on the wire (``spec.clientID``), as the user wrote the manifest.
        message: what is wrong and why it matters.
        severity: :attr:`Severity.ERROR` or :attr:`Severity.WARNING`.
        suggestion: a replacement value that would pass, when one can be guessed.
    """

    path: str
    message: str
    severity: Severity = Severity.ERROR
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" (suggestion: {self.suggestion!r})" if self.suggestion is not None else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.severity.value}: {where}{self.message}{hint}"
