"""Each model declares its wire fields in one table; the table and the attrs class must agree.

A new attribute added to a model but not to its table would be silently left off the wire
(never written by ``to_dict``, never read by ``from_dict``, missing from the CRD schema), and a
table row naming an attribute the class lacks would fail only when that field is first used.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from podidentity import models
from podidentity.models._wire import Field

#: Attributes every resource has that are not spec fields: they have their own wire places.
_RESOURCE_FRAME = {"metadata", "status", "spec_extra", "extra"}

_STRUCTS = [
    cls
    for cls in vars(models).values()
    if isinstance(cls, type) and attrs.has(cls) and "_fields" in vars(cls)
]
_RESOURCES = [
    cls
    for cls in vars(models).values()
    if isinstance(cls, type) and attrs.has(cls) and "_spec_fields" in vars(cls)
]


def _attributes(cls: type[Any]) -> set[str]:
    return {a.name for a in attrs.fields(cls)}


def _table(fields: tuple[Field, ...]) -> list[str]:
    return [field.attr for field in fields]


def test_every_model_with_a_table_is_checked() -> None:
    # The lists above come from the package's public names; losing one would hollow this out.
    assert {c.__name__ for c in _RESOURCES} == {
        "AzureIdentity",
        "AzureIdentityBinding",
        "AzureAssignedIdentity",
        "AzurePodIdentityException",
    }
    assert {
        "ObjectMeta",
        "OwnerReference",
        "LabelSelector",
        "LabelSelectorRequirement",
        "SecretReference",
        "ReplicaStatus",
        "AssignedIdentityStatus",
        "ExceptionStatus",
    } <= {c.__name__ for c in _STRUCTS}


@pytest.mark.parametrize("cls", _STRUCTS, ids=lambda c: c.__name__)
def test_a_struct_table_names_every_attribute_once(cls: type[Any]) -> None:
    table = _table(cls._fields)
    assert len(table) == len(set(table)), f"{cls.__name__}: an attribute is in its table twice"
    assert set(table) == _attributes(cls) - {"extra"}, (
        f"{cls.__name__}: attributes and wire table differ"
    )


@pytest.mark.parametrize("cls", _RESOURCES, ids=lambda c: c.__name__)
def test_a_resource_spec_table_names_every_spec_attribute_once(cls: type[Any]) -> None:
    table = _table(cls._spec_fields)
    assert len(table) == len(set(table)), f"{cls.__name__}: an attribute is in its table twice"
    assert set(table) == _attributes(cls) - _RESOURCE_FRAME, (
        f"{cls.__name__}: spec attributes and wire table differ"
    )


@pytest.mark.parametrize("cls", _STRUCTS + _RESOURCES, ids=lambda c: c.__name__)
def test_wire_names_are_unique_within_a_table(cls: type[Any]) -> None:
    fields = cls._fields if "_fields" in vars(cls) else cls._spec_fields
    names = [name for field in fields for name in field.names]
    assert len(names) == len(set(names)), f"{cls.__name__}: one wire name is read into two fields"
