"""The public surface: a sorted ``__all__``, every name importable and documented."""

from __future__ import annotations

import importlib
import re
import types
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


# Every public package, not only the top level: each name in its ``__all__`` must be on a
# reference page, either by name (``::: pkg.name``), through a module rendered with its members,
# or as the same object documented under another path (``keyvault.aio`` re-exports the sync
# classes). The command line (``podidentity.cli``) is documented by ``--help`` and its pages.
PUBLIC_PACKAGES = [
    "podidentity.azure",
    "podidentity.crds",
    "podidentity.errors",
    "podidentity.keyvault",
    "podidentity.keyvault.aio",
    "podidentity.kube",
    "podidentity.models",
    "podidentity.nmi",
    "podidentity.reconciler",
    "podidentity.testing",
    "podidentity.testing.azure",
    "podidentity.testing.kube",
]


def reference_targets() -> dict[str, bool]:
    """Every ``::: target`` of the reference pages, and whether its members are rendered."""
    targets: dict[str, bool] = {}
    for page in DOCS.glob("*.md"):
        text = page.read_text()
        for match in re.finditer(r"^::: ([\w.]+)\n((?:    .*\n)*)", text, flags=re.MULTILINE):
            targets[match[1]] = "members: false" not in match[2]
    return targets


def _resolve(target: str) -> object:
    try:
        return importlib.import_module(target)
    except ImportError:
        module, _, name = target.rpartition(".")
        return getattr(importlib.import_module(module), name)


def _by_identity(obj: object) -> bool:
    # Numbers and strings are equal by value, not the same object: only name them.
    return not isinstance(obj, (int, float, str, bytes, type(None)))


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_name_of_every_package_is_documented(package: str) -> None:
    targets = reference_targets()
    with_members = {t for t, members in targets.items() if members and _is_module(_resolve(t))}
    documented = {id(_resolve(t)) for t in targets}
    module = importlib.import_module(package)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if (
            f"{package}.{name}" in targets
            or package in with_members
            or _public_module(obj) in with_members
            or (_by_identity(obj) and id(obj) in documented)
        ):
            continue
        missing.append(name)
    assert missing == [], f"public in {package} but on no docs/reference page: {missing}"


def _is_module(obj: object) -> bool:
    return isinstance(obj, types.ModuleType)
