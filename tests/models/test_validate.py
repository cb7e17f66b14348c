"""validate_documents: every finding of a manifest, with exact paths and what convert fixes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podidentity.models import Severity, convert_documents, validate_documents
from tests.models.strategies import json_values, resource_dicts
from tests.models.test_convert import MANIFESTS, SEED, documents

E, W = Severity.ERROR, Severity.WARNING


def summary(docs: list[Any]) -> list[tuple[int, str, Severity, bool]]:
    return [
        (f.index, f.problem.path, f.problem.severity, f.convertible)
        for f in validate_documents(docs)
    ]


def test_the_seed_manifests_report_every_problem() -> None:
    assert summary(documents(SEED)) == [
        (0, "spec.Type", E, True),
        (0, "spec.ResourceID", E, True),
        (0, "spec.ClientID", E, True),
        (0, "metadata.name", E, True),
        (1, "spec.AzureIdentity", E, True),
        (1, "spec.Selector", E, True),
        (1, "metadata.name", E, True),
        (1, "spec.azureIdentity", E, True),
    ]
    findings = validate_documents(documents(SEED))
    assert findings[2].problem.suggestion == "clientID"
    assert findings[3].problem.suggestion == "my-identity"
    assert str(findings[2]).startswith(
        "AzureIdentity my_identity: error: spec.ClientID: legacy spelling 'ClientID'"
    )
    assert str(findings[2]).endswith("; fix: run podidentity convert")


# Upstream's examples are v1 already; what is left are their placeholders, and bindings whose
# identity is in another file.
UPSTREAM = {
    "deploy_demo_aadpodidentity-sp-cert.yaml": [(1, "spec.clientID", E), (1, "spec.tenantID", E)],
    "deploy_demo_aadpodidentity-sp.yaml": [(1, "spec.clientID", E), (1, "spec.tenantID", E)],
    "deploy_demo_aadpodidentity.yaml": [(0, "spec.resourceID", E), (0, "spec.clientID", E)],
    "deploy_demo_aadpodidentitybinding.yaml": [(0, "spec.azureIdentity", W)],
    "deploy_demo_deployment.yaml": [],
    "examples_azurepodidentityexception.yaml": [],
    "examples_java-blob_deployment_azurebinding.yaml": [(0, "spec.azureIdentity", W)],
    "examples_java-blob_deployment_azureidentity.yaml": [
        (0, "spec.resourceID", E),
        (0, "spec.clientID", E),
    ],
}


def test_every_upstream_manifest_is_covered() -> None:
    assert sorted(UPSTREAM) == [p.name for p in MANIFESTS]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_upstream_manifests(path: Path) -> None:
    docs = documents(path.read_text())
    assert [(i, p, s) for i, p, s, _ in summary(docs)] == UPSTREAM[path.name]
    assert not any(f.convertible for f in validate_documents(docs))
    converted, _ = convert_documents(docs)
    assert summary(converted) == summary(docs)


def test_upstream_manifests_together() -> None:
    docs = [d for p in MANIFESTS for d in documents(p.read_text())]
    found = {(f.obj, f.problem.path, f.problem.severity) for f in validate_documents(docs)}
    # The demo binding finds its identity now; three files define 'demo-aad1'.
    assert ("AzureIdentityBinding demo-azure-id-binding", "spec.azureIdentity", W) not in found
    assert ("AzureIdentity demo-aad1", "metadata.name", W) in found
    # The java example's binding and identity are both in namespace 'blob'.
    assert ("AzureIdentityBinding blob/blob-example-binding", "spec.azureIdentity", W) not in found
    # The demo Deployment's pods carry 'aadpodidbinding: demo', which the binding selects.
    assert not any(obj.startswith("Deployment") for obj, _, _ in found)


def binding(name: str, identity: str, namespace: str = "", **spec: Any) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": meta,
        "spec": {"azureIdentity": identity, "selector": "web", **spec},
    }


def identity(name: str, namespace: str = "", **spec: Any) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentity",
        "metadata": meta,
        "spec": {
            "type": 3,
            "clientID": "11111111-2222-3333-4444-555555555555",
            "tenantID": "11111111-2222-3333-4444-555555555555",
            **spec,
        },
    }


def test_a_binding_to_an_identity_of_another_namespace() -> None:
    findings = validate_documents([identity("id", "prod"), binding("b", "id", "apps")])
    assert len(findings) == 1
    problem = findings[0].problem
    assert (findings[0].index, problem.path, problem.severity) == (1, "spec.azureIdentity", W)
    assert "is in namespace 'prod'" in problem.message
    # Without a namespace, a manifest goes wherever it is applied: no finding.
    assert validate_documents([identity("id"), binding("b", "id", "apps")]) == []


def test_an_object_defined_twice_is_a_warning() -> None:
    assert summary([identity("id"), identity("id"), identity("id", "other")]) == [
        (1, "metadata.name", W, False)
    ]


def test_pods_labelled_for_no_binding() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "selector": {"matchLabels": {"aadpodidbinding": "api"}},
            "template": {"metadata": {"labels": {"aadpodidbinding": "api"}}},
        },
    }
    docs = [identity("id"), binding("b", "id"), deployment]
    findings = validate_documents(docs)
    assert [(f.index, f.problem.path, f.problem.severity) for f in findings] == [
        (2, "spec.selector.matchLabels.aadpodidbinding", W)
    ]
    assert "no AzureIdentityBinding in the given manifests selects 'api'" in str(findings[0])
    # Manifests without any binding are somebody else's apps: not reported.
    assert validate_documents([deployment]) == []


def test_a_structural_error_does_not_hide_the_next_document() -> None:
    broken = identity("id", clientID=5)
    docs = ["not an object", broken, binding("Bad_Name", "id")]
    found = summary(docs)
    assert found == [
        (0, "", E, False),
        (1, "spec.clientID", E, False),
        (2, "metadata.name", E, True),
    ]
    assert "expected a string, found an integer" in validate_documents(docs)[1].problem.message


def test_type_as_text_is_reported_and_the_rest_still_checked() -> None:
    doc = identity("id", type="1")
    found = validate_documents([doc])
    assert [(f.problem.path, f.convertible) for f in found] == [
        ("spec.type", True),
        ("spec.clientPassword", False),  # type 1 needs a Secret: found because it was read
    ]
    assert found[0].problem.suggestion == "1"


@settings(max_examples=80, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_never_raises(docs: list[Any]) -> None:
    for finding in validate_documents(docs):
        assert finding.problem.message


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(resource_dicts, min_size=1, max_size=3),
    names=st.lists(st.sampled_from(["My_Identity", "web_ID", "a b", "Demo"]), min_size=3),
)
def test_convert_fixes_everything_it_claims_to(docs: list[Any], names: list[str]) -> None:
    for data, name in zip(docs, names, strict=False):
        data["metadata"]["name"] = name
    try:
        converted, _ = convert_documents(docs)
    except ValueError:
        return  # two names collapsed into one: refused, nothing to check
    assert not [f for f in validate_documents(converted) if f.convertible]
