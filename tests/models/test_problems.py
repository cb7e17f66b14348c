"""Semantic checks: problems() findings, with paths and suggestions; never exceptions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from podidentity.errors import ValidationError
from podidentity.models import (
    AzureAssignedIdentity,
    AzureIdentity,
    AzureIdentityBinding,
    AzurePodIdentityException,
    IdentityType,
    LabelSelector,
    ObjectMeta,
    Problem,
    SecretReference,
    Severity,
    parse,
)
from tests.models.strategies import resource_dicts

GUID = "11111111-2222-3333-4444-555555555555"
ARM_ID = (
    f"/subscriptions/{GUID}/resourcegroups/my-rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/my-id"
)


def by_path(problems: list[Problem]) -> dict[str, Problem]:
    return {p.path: p for p in problems}


def test_valid_identities_have_no_problems() -> None:
    meta = ObjectMeta(name="demo", namespace="default")
    assert AzureIdentity(metadata=meta, resource_id=ARM_ID, client_id=GUID).problems() == []
    assert (
        AzureIdentity(
            metadata=meta, resource_id=ARM_ID.upper().replace(GUID.upper(), GUID), client_id=GUID
        ).problems()
        == []
    )
    sp = AzureIdentity(
        metadata=meta,
        type=IdentityType.SERVICE_PRINCIPAL,
        client_id=GUID,
        tenant_id=GUID,
        client_password=SecretReference(name="sp", namespace="default"),
    )
    assert sp.problems() == []
    federated = AzureIdentity(metadata=meta, type=3, client_id=GUID, tenant_id=GUID)
    assert federated.problems() == []


def test_underscore_name_gets_a_dns1123_suggestion() -> None:
    identity = AzureIdentity(
        metadata=ObjectMeta(name="demo_aks_pod_id"), resource_id=ARM_ID, client_id=GUID
    )
    (problem,) = identity.problems()
    assert problem.path == "metadata.name"
    assert "DNS-1123" in problem.message
    assert problem.suggestion == "demo-aks-pod-id"
    assert "demo-aks-pod-id" in str(problem)
    binding = AzureIdentityBinding(
        metadata=ObjectMeta(name="b"), azure_identity="Demo_AKS pod!id", selector="x"
    )
    assert by_path(binding.problems())["spec.azureIdentity"].suggestion == "demo-aks-podid"


@pytest.mark.parametrize(
    "placeholder", ["CLIENT_ID", "<IDENTITY_CLIENT_ID>", "${CLIENT_ID}", "xxxxxxxx-xxxx"]
)
def test_placeholders_are_called_placeholders(placeholder: str) -> None:
    identity = AzureIdentity(
        metadata=ObjectMeta(name="x"), resource_id=ARM_ID, client_id=placeholder
    )
    problem = by_path(identity.problems())["spec.clientID"]
    assert "placeholder" in problem.message
    assert placeholder in problem.message


def test_not_a_guid() -> None:
    identity = AzureIdentity(metadata=ObjectMeta(name="x"), resource_id=ARM_ID, client_id="1234")
    assert "is not a GUID" in by_path(identity.problems())["spec.clientID"].message


@pytest.mark.parametrize(
    "resource_id",
    [
        "/subscriptions/abc/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x1y",
        f"/subscriptions/{GUID}/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        "my-identity",
    ],
)
def test_resource_id_must_be_a_user_assigned_identity(resource_id: str) -> None:
    identity = AzureIdentity(metadata=ObjectMeta(name="x"), resource_id=resource_id, client_id=GUID)
    problem = by_path(identity.problems())["spec.resourceID"]
    assert "userAssignedIdentities" in problem.message
    assert problem.severity is Severity.ERROR


def test_type_requirements() -> None:
    meta = ObjectMeta(name="x")
    msi = by_path(AzureIdentity(metadata=meta).problems())
    assert "is required" in msi["spec.resourceID"].message
    assert "is required" in msi["spec.clientID"].message
    sp = by_path(AzureIdentity(metadata=meta, type=2, client_id=GUID, tenant_id=GUID).problems())
    assert "certificate" in sp["spec.clientPassword"].message
    half = AzureIdentity(
        metadata=meta,
        type=1,
        client_id=GUID,
        tenant_id=GUID,
        client_password=SecretReference(name="s"),
    )
    assert by_path(half.problems())["spec.clientPassword.namespace"].message.startswith(
        "is required"
    )
    fed = by_path(AzureIdentity(metadata=meta, type=3).problems())
    assert {"spec.clientID", "spec.tenantID"} <= fed.keys()
    ignored = by_path(
        AzureIdentity(
            metadata=meta, type=3, client_id=GUID, tenant_id=GUID, resource_id=ARM_ID
        ).problems()
    )
    assert ignored["spec.resourceID"].severity is Severity.WARNING


def test_tenant_domain_is_a_warning() -> None:
    identity = AzureIdentity(
        metadata=ObjectMeta(name="x"), type=3, client_id=GUID, tenant_id="contoso.onmicrosoft.com"
    )
    assert by_path(identity.problems())["spec.tenantID"].severity is Severity.WARNING


def test_binding_problems() -> None:
    meta = ObjectMeta(name="b")
    nothing = by_path(AzureIdentityBinding(metadata=meta, azure_identity="x").problems())
    assert "no pod matches" in nothing["spec.selector"].message
    bad_value = by_path(
        AzureIdentityBinding(metadata=meta, azure_identity="x", selector="my app").problems()
    )
    assert "not a valid label value" in bad_value["spec.selector"].message
    assert bad_value["spec.selector"].suggestion == "my-app"
    empty = AzureIdentityBinding(metadata=meta, azure_identity="x", label_selector=LabelSelector())
    assert by_path(empty.problems())["spec.labelSelector"].severity is Severity.WARNING
    no_sa = AzureIdentityBinding(
        metadata=meta, azure_identity="x", selector="s", service_account_names=[]
    )
    assert "no pod" in by_path(no_sa.problems())["spec.serviceAccountNames"].message
    bad_sa = AzureIdentityBinding(
        metadata=meta, azure_identity="x", selector="s", service_account_names=["ok", "Not_OK"]
    )
    assert by_path(bad_sa.problems())["spec.serviceAccountNames[1]"].suggestion == "not-ok"
    assert (
        "is required"
        in by_path(AzureIdentityBinding(metadata=meta, selector="s").problems())[
            "spec.azureIdentity"
        ].message
    )


def test_exception_problems() -> None:
    empty = AzurePodIdentityException(metadata=ObjectMeta(name="e"))
    assert "matches no pod" in by_path(empty.problems())["spec.podLabels"].message
    bad = AzurePodIdentityException(metadata=ObjectMeta(name="e"), pod_labels={"a": "b c"})
    assert "not a valid label value" in by_path(bad.problems())["spec.podLabels.a"].message


def test_assigned_identity_problems_include_embedded_objects() -> None:
    identity = AzureIdentity(
        metadata=ObjectMeta(name="id", namespace="default"),
        resource_id=ARM_ID,
        client_id="CLIENT_ID",
    )
    binding = AzureIdentityBinding(
        metadata=ObjectMeta(name="b", namespace="default"), azure_identity="other", selector="s"
    )
    assigned = AzureAssignedIdentity(
        metadata=ObjectMeta(name="wrong", namespace="default"),
        azure_identity_ref=identity,
        azure_binding_ref=binding,
        pod="p",
        pod_namespace="default",
        node_name="n1",
    )
    found = by_path(assigned.problems())
    assert "placeholder" in found["spec.azureIdentityRef.spec.clientID"].message
    assert "'other'" in found["spec.azureBindingRef.spec.azureIdentity"].message
    assert found["metadata.name"].suggestion == "p-default-id"
    assert {"spec.pod", "spec.azureIdentityRef"} <= by_path(
        AzureAssignedIdentity(metadata=ObjectMeta(name="a")).problems()
    ).keys()


def test_metadata_problems() -> None:
    meta = ObjectMeta(
        name="ok", namespace="Bad_NS", labels={"good": "v", "bad key": "v", "k": "bad value"}
    )
    found = by_path(AzurePodIdentityException(metadata=meta, pod_labels={"a": "b"}).problems())
    assert found["metadata.namespace"].suggestion == "bad-ns"
    assert "label key" in found["metadata.labels.bad key"].message
    assert "label value" in found["metadata.labels.k"].message


@settings(deadline=None)  # timing varies on a shared machine
@given(resource_dicts)
def test_problems_never_raise(data: dict[str, Any]) -> None:
    try:
        model = parse(data)
    except ValidationError:
        return
    for problem in model.problems():
        assert problem.path
        assert str(problem).startswith(("error: ", "warning: "))
