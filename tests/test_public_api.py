"""The public surface: a sorted ``__all__``, every name importable and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import podidentity
import podidentity.testing

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference"


def documented_names() -> set[str]:
    names: set[str] = set()
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.MULTILINE):
            names.add(target.rsplit(".", 1)[-1])
            names.add(target)
    return names


def test_all_is_sorted_and_unique() -> None:
    assert podidentity.__all__ == sorted(set(podidentity.__all__))


@pytest.mark.parametrize("name", podidentity.__all__)
def test_every_public_name_is_importable_and_documented(name: str) -> None:
    obj = getattr(podidentity, name)
    documented = documented_names()
    module_documented = f"podidentity.{name}" in documented
    assert name in documented or module_documented, (
        f"podidentity.{name} is public but no docs/reference page has '::: ...{name}'"
    )
    assert obj.__doc__, f"podidentity.{name} has no docstring"


def _public_module(obj: object) -> str:
    """The public module that documents ``obj`` (``a.b._c`` is documented as ``a.b``)."""
    parts = getattr(obj, "__module__", "").split(".")
    while parts and parts[-1].startswith("_"):
        parts.pop()
    return ".".join(parts)


@pytest.mark.parametrize("name", podidentity.testing.__all__)
def test_every_testing_name_is_documented(name: str) -> None:
    obj = getattr(podidentity.testing, name)
    documented = documented_names()
    assert f"podidentity.testing.{name}" in documented or _public_module(obj) in documented, (
        f"podidentity.testing.{name} is public but not in docs/reference/testing.md"
    )


def test_testing_all_is_sorted() -> None:
    assert podidentity.testing.__all__ == sorted(set(podidentity.testing.__all__))
