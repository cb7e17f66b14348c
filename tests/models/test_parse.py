"""Wire conversion: parse, from_dict, to_dict, legacy spellings, unknown fields, errors."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podidentity.errors import ValidationError
from podidentity.models import (
    KINDS,
    AssignedIdentityState,
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    FrozenDict,
    IdentityType,
    LabelSelector,
    ObjectMeta,
    SecretReference,
    parse,
)
from tests.models.strategies import json_values, resource_dicts

IDENTITY = {
    "apiVersion": "aadpodidentity.k8s.io/v1",
    "kind": "AzureIdentity",
    "metadata": {"name": "x", "namespace": "default"},
    "spec": {"type": 0, "resourceID": "/subscriptions/abc", "clientID": "c"},
}


def test_identity_fields_are_typed_and_snake_case() -> None:
    identity = parse(IDENTITY)
    assert isinstance(identity, AzureIdentity)
    assert identity.type is IdentityType.USER_ASSIGNED_MSI
    assert (identity.resource_id, identity.client_id) == ("/subscriptions/abc", "c")
    assert identity.name == "x"
    assert identity.namespace == "default"
    assert identity.client_password is None


def test_service_principal_secret_reference() -> None:
    data = copy.deepcopy(IDENTITY)
    data["spec"] = {"type": 1, "clientPassword": {"name": "s", "namespace": "ns"}}
    identity = AzureIdentity.from_dict(data)
    assert identity.client_password == SecretReference(name="s", namespace="ns")
    assert identity.to_dict()["spec"] == {
        "type": 1,
        "clientPassword": {"name": "s", "namespace": "ns"},
    }


def test_class_vars_identify_kind() -> None:
    assert AzureIdentity.api_version == "aadpodidentity.k8s.io/v1"
    assert (AzureIdentity.kind, AzureIdentity.plural) == ("AzureIdentity", "azureidentities")
    assert AzureAssignedIdentity.plural == "azureassignedidentities"
    assert sorted(KINDS) == [
        "AzureAssignedIdentity",
        "AzureIdentity",
        "AzureIdentityBinding",
        "AzurePodIdentityException",
    ]


def test_legacy_spellings_are_read_and_written_canonical() -> None:
    identity = AzureIdentity.from_dict(
        {
            "metadata": {"name": "x"},
            "spec": {
                "type": 1,
                "ResourceID": "r",
                "ClientID": "c",
                "TenantID": "t",
                "ClientPassword": {"name": "s", "namespace": "d"},
            },
        }
    )
    assert identity.to_dict()["spec"] == {
        "type": 1,
        "resourceID": "r",
        "clientID": "c",
        "tenantID": "t",
        "clientPassword": {"name": "s", "namespace": "d"},
    }
    binding = AzureIdentityBinding.from_dict(
        {"metadata": {"name": "b"}, "spec": {"AzureIdentity": "x", "Selector": "sel"}}
    )
    assert (binding.azure_identity, binding.selector) == ("x", "sel")
    exception = AzurePodIdentityException.from_dict(
        {"metadata": {"name": "e"}, "spec": {"PodLabels": {"app": "a"}}}
    )
    assert exception.to_dict()["spec"] == {"podLabels": {"app": "a"}}


def test_both_spellings_equal_is_fine_different_is_an_error() -> None:
    same = {"metadata": {"name": "x"}, "spec": {"clientID": "c", "ClientID": "c"}}
    assert AzureIdentity.from_dict(same).client_id == "c"
    differ = {
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"clientID": "a", "ClientID": "b"},
    }
    with pytest.raises(ValidationError) as info:
        AzureIdentity.from_dict(differ)
    message = str(info.value)
    assert message.startswith("AzureIdentity ns/x: spec.clientID: ")
    assert "'clientID'" in message
    assert "'ClientID'" in message
    assert "'a'" in message
    assert "'b'" in message


def test_type_out_of_range_names_object_path_rule_value() -> None:
    data = copy.deepcopy(IDENTITY)
    data["spec"]["type"] = 7
    with pytest.raises(ValidationError) as info:
        parse(data)
    assert str(info.value) == "AzureIdentity default/x: spec.type: expected 0, 1, 2 or 3, got 7"
    assert (info.value.path, info.value.value, info.value.obj) == (
        "spec.type",
        7,
        "AzureIdentity default/x",
    )


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d["spec"].update(type=True), "spec.type", "expected 0, 1, 2 or 3"),
        (lambda d: d["spec"].update(type="0"), "spec.type", "expected 0, 1, 2 or 3"),
        (lambda d: d["spec"].update(clientID=5), "spec.clientID", "expected a string"),
        (lambda d: d["metadata"].pop("name"), "metadata.name", "is required"),
        (lambda d: d["metadata"].update(name=""), "metadata.name", "may not be empty"),
        (lambda d: d.pop("metadata"), "metadata", "is required"),
        (lambda d: d.update(spec=[]), "spec", "expected an object, found a list"),
        (lambda d: d["metadata"].update(labels={"a": 1}), "metadata.labels.a", "expected a string"),
        (lambda d: d["metadata"].update(generation="1"), "metadata.generation", "integer"),
        (
            lambda d: d["metadata"].update(creationTimestamp="yesterday"),
            "metadata.creationTimestamp",
            "RFC 3339",
        ),
        (
            lambda d: d["spec"].update(auxiliaryTenantIDs=["a", 3]),
            "spec.auxiliaryTenantIDs[1]",
            "string",
        ),
        (
            lambda d: d["spec"].update(replicas=2**40),
            "spec.replicas",
            "from -2147483648 to 2147483647",
        ),
        (lambda d: d.update(apiVersion="v1"), "apiVersion", "expected 'aadpodidentity.k8s.io/v1'"),
    ],
)
def test_structural_errors(mutate: Any, path: str, fragment: str) -> None:
    data = copy.deepcopy(IDENTITY)
    mutate(data)
    with pytest.raises(ValidationError) as info:
        parse(data)
    assert info.value.path == path
    assert fragment in str(info.value)
    assert str(info.value).startswith("AzureIdentity")


def test_unknown_kind_lists_known_kinds() -> None:
    with pytest.raises(ValidationError) as info:
        parse(
            {
                "apiVersion": "aadpodidentity.k8s.io/v1",
                "kind": "AzureIdentities",
                "metadata": {"name": "n"},
            }
        )
    message = str(info.value)
    assert "'AzureIdentities'" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize("value", [None, [], "AzureIdentity", 3])
def test_not_an_object(value: Any) -> None:
    with pytest.raises(ValidationError, match="expected an object"):
        parse(value)
    with pytest.raises(ValidationError, match="expected an object"):
        AzureIdentity.from_dict(value)


def test_from_dict_refuses_another_kind() -> None:
    with pytest.raises(ValidationError, match="kind: expected 'AzureIdentityBinding'"):
        AzureIdentityBinding.from_dict(IDENTITY)


def test_unknown_fields_everywhere_survive() -> None:
    data = copy.deepcopy(IDENTITY)
    data["x-top"] = {"a": [1, 2]}
    data["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    data["spec"]["futureField"] = "v"
    data["spec"]["metadata"] = {"creationTimestamp": None}
    data["status"] = {"availableReplicas": 1, "conditions": [{"type": "Ready"}]}
    identity = parse(data)
    assert identity.extra == {"x-top": {"a": (1, 2)}}
    assert identity.spec_extra["futureField"] == "v"
    assert "managedFields" in identity.metadata.extra
    assert identity.status.extra["conditions"] == ({"type": "Ready"},)
    assert identity.to_dict() == data


def test_extra_is_read_only() -> None:
    identity = parse({**IDENTITY, "x": {"a": 1}})
    assert isinstance(identity.extra, FrozenDict)
    with pytest.raises(TypeError):
        identity.extra["x"]["a"] = 2  # type: ignore[index]
    assert hash(identity) == hash(parse({**IDENTITY, "x": {"a": 1}}))


def test_to_dict_returns_fresh_containers() -> None:
    identity = parse({**IDENTITY, "x": {"a": [1]}})
    out = identity.to_dict()
    out["x"]["a"].append(2)
    assert identity.to_dict()["x"] == {"a": [1]}


def test_extra_may_not_shadow_known_fields() -> None:
    with pytest.raises(ValidationError, match="known field"):
        AzureIdentity(metadata=ObjectMeta(name="x"), spec_extra={"ClientID": "c"})


def test_evolve_changes_a_copy() -> None:
    identity = parse(IDENTITY)
    changed = attrs.evolve(identity, client_id="other", type=1)
    assert changed.type is IdentityType.SERVICE_PRINCIPAL
    assert changed.to_dict()["spec"]["clientID"] == "other"
    assert identity.client_id == "c"


def test_null_means_absent() -> None:
    data = {"metadata": {"name": "x", "labels": None}, "spec": {"clientID": None}, "status": None}
    identity = AzureIdentity.from_dict(data)
    assert identity.client_id == ""
    assert identity.metadata.labels == {}
    assert identity.to_dict() == {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": "x"},
        "spec": {"type": 0},
    }


def test_timestamps_are_aware_utc_and_written_as_kubernetes_does() -> None:
    meta = {"name": "x", "creationTimestamp": "2024-05-01T14:00:00+02:00"}
    identity = AzureIdentity.from_dict({"metadata": meta})
    assert identity.metadata.creation_timestamp == dt.datetime(
        2024, 5, 1, 12, tzinfo=dt.timezone.utc
    )
    assert identity.to_dict()["metadata"]["creationTimestamp"] == "2024-05-01T12:00:00Z"
    with pytest.raises(ValidationError, match="zone"):
        AzureIdentity.from_dict(
            {"metadata": {"name": "x", "creationTimestamp": "2024-05-01T12:00:00"}}
        )


def test_assigned_identity_embeds_full_objects() -> None:
    binding = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": "b", "namespace": "default"},
        "spec": {"azureIdentity": "x", "selector": "s"},
    }
    data = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureAssignedIdentity",
        "metadata": {"name": "p-default-x", "namespace": "default", "labels": {"nodename": "n1"}},
        "spec": {
            "azureIdentityRef": IDENTITY,
            "azureBindingRef": binding,
            "pod": "p",
            "podNamespace": "default",
            "nodename": "n1",
        },
        "status": {"status": "Assigned"},
    }
    assigned = parse(data)
    assert isinstance(assigned, AzureAssignedIdentity)
    assert assigned.azure_identity_ref == parse(IDENTITY)
    assert assigned.node_name == "n1"
    assert assigned.state is AssignedIdentityState.ASSIGNED
    assert assigned.to_dict() == data
    bad = copy.deepcopy(data)
    bad["spec"]["azureIdentityRef"]["spec"]["type"] = 9
    with pytest.raises(ValidationError) as info:
        parse(bad)
    assert info.value.path == "spec.azureIdentityRef.spec.type"
    assert info.value.obj == "AzureAssignedIdentity default/p-default-x"
    bad["spec"]["azureIdentityRef"]["spec"]["type"] = 0
    bad["status"]["status"] = "Done"
    with pytest.raises(
        ValidationError, match=r"status\.status: expected Created, Assigned or Unassigned"
    ):
        parse(bad)


def test_binding_extensions_on_the_wire() -> None:
    data = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": "b"},
        "spec": {
            "azureIdentity": "x",
            "labelSelector": {"matchLabels": {"app": "web"}},
            "serviceAccountNames": [],
        },
    }
    binding = parse(data)
    assert isinstance(binding, AzureIdentityBinding)
    assert binding.label_selector == LabelSelector(match_labels={"app": "web"})
    assert binding.service_account_names == ()
    assert binding.to_dict() == data
    del data["spec"]["serviceAccountNames"]
    assert AzureIdentityBinding.from_dict(data).service_account_names is None


# --- properties ------------------------------------------------------------------------


@settings(deadline=None)  # timing varies on a shared machine
@given(resource_dicts)
def test_round_trip_is_lossless_for_canonical_input(data: dict[str, Any]) -> None:
    model = parse(data)
    assert model.to_dict() == data
    assert parse(model.to_dict()) == model


@settings(deadline=None)  # timing varies on a shared machine
@given(json_values)
def test_arbitrary_json_raises_only_validation_error(data: Any) -> None:
    for build in (parse, *(cls.from_dict for cls in KINDS.values())):
        try:
            model = build(data)
        except ValidationError as err:
            error: ValidationError | None = err
        else:
            error = None
            assert parse(model.to_dict()) == model
        assert error is None or error.rule


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@settings(deadline=None)  # timing varies on a shared machine
@given(resource_dicts, st.data())
def test_mutated_objects_raise_only_validation_error(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    paths = [p for p in _paths(data) if p]
    path = draw.draw(st.sampled_from(paths))
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    action = draw.draw(st.sampled_from(["replace", "delete", "legacy"]))
    if action == "replace" or isinstance(parent, list):
        parent[path[-1]] = draw.draw(json_values)
    elif action == "delete":
        del parent[path[-1]]
    else:
        key = path[-1]
        parent[key[:1].upper() + key[1:]] = draw.draw(json_values)
    try:
        model = parse(data)
    except ValidationError as err:
        error: ValidationError | None = err
    else:
        error = None
        assert parse(model.to_dict()) == model  # whatever parses, writes back and re-reads
    assert error is None or error.obj  # the message names the object
