"""convert_documents: legacy manifests to the v1 form, consistently and idempotently."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from podidentity.errors import ValidationError
from podidentity.models import (
    AzureIdentity,
    AzureIdentityBinding,
    Change,
    IdentityType,
    convert_documents,
    load_documents,
    parse,
    validate_documents,
)
from tests.models.strategies import resource_dicts

COMPAT = Path(__file__).resolve().parents[1] / "compat" / "aad-pod-identity"
MANIFESTS = sorted(p for p in COMPAT.glob("*.yaml") if not p.name.startswith("config_crd"))

RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/my_identity"
)
CLIENT_ID = "11111111-2222-3333-4444-555555555555"

# The seed article's manifests: capitalised fields and names with underscores.
SEED = f"""\
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: my_identity
spec:
  Type: 0
  ResourceID: {RESOURCE_ID}
  ClientID: {CLIENT_ID}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: my_identity_binding
spec:
  AzureIdentity: my_identity
  Selector: my_app
---
apiVersion: v1
kind: Pod
metadata:
  name: demo
  labels:
    aadpodidbinding: my_app
spec:
  containers:
  - name: demo
    image: nginx
"""


def documents(text: str) -> list[Any]:
    return [d.data for d in load_documents(text)]


def test_the_seed_manifests_convert_to_v1() -> None:
    before = documents(SEED)
    after, changes = convert_documents(before)
    assert [(c.index, c.path, c.kind, c.old, c.new) for c in changes] == [
        (0, "spec.Type", "field", "Type", "type"),
        (0, "spec.ResourceID", "field", "ResourceID", "resourceID"),
        (0, "spec.ClientID", "field", "ClientID", "clientID"),
        (0, "metadata.name", "value", "my_identity", "my-identity"),
        (1, "spec.AzureIdentity", "field", "AzureIdentity", "azureIdentity"),
        (1, "spec.Selector", "field", "Selector", "selector"),
        (1, "spec.azureIdentity", "value", "my_identity", "my-identity"),
        (1, "metadata.name", "value", "my_identity_binding", "my-identity-binding"),
    ]
    assert after[0]["metadata"] == {"name": "my-identity"}
    assert list(after[0]["spec"].items()) == [
        ("type", 0),
        ("resourceID", RESOURCE_ID),  # the ARM ID's own name keeps its '_': Azure allows it
        ("clientID", CLIENT_ID),
    ]
    assert after[1]["spec"] == {"azureIdentity": "my-identity", "selector": "my_app"}
    assert after[2] == before[2]  # a valid label value ('my_app') is not renamed
    assert str(changes[0]) == "AzureIdentity my_identity: spec.Type: field 'Type' -> 'type'"
    assert before == documents(SEED), "the input is not modified"


def test_converted_seed_parses_and_validates_clean() -> None:
    after, _ = convert_documents(documents(SEED))
    identity, binding = parse(after[0]), parse(after[1])
    assert isinstance(identity, AzureIdentity)
    assert isinstance(binding, AzureIdentityBinding)
    assert identity.client_id == CLIENT_ID
    assert identity.resource_id == RESOURCE_ID
    assert binding.azure_identity == identity.name == "my-identity"
    assert binding.matches({"aadpodidbinding": "my_app"}, service_account="default")
    assert validate_documents(after) == []


def test_converting_twice_changes_nothing() -> None:
    once, _ = convert_documents(documents(SEED))
    twice, changes = convert_documents(once)
    assert twice == once
    assert changes == []


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_upstream_manifests_are_already_v1(path: Path) -> None:
    before = documents(path.read_text())
    after, changes = convert_documents(before)
    assert changes == []
    assert after == before


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_capitalised_upstream_manifests_convert_back(path: Path) -> None:
    text = path.read_text()
    legacy = text
    for v1, old in [
        ("resourceID:", "ResourceID:"),
        ("clientID:", "ClientID:"),
        ("tenantID:", "TenantID:"),
        ("clientPassword:", "ClientPassword:"),
        ("azureIdentity:", "AzureIdentity:"),
        ("selector: ", "Selector: "),
        ("podLabels:", "PodLabels:"),
        ("  type: ", "  Type: "),
    ]:
        legacy = legacy.replace(v1, old) if "aadpodidentity.k8s.io/v1" in text else legacy
    # Only our kinds' fields are legacy: the Deployment's own 'selector:' key is a mapping.
    after, changes = convert_documents(documents(legacy))
    assert after == documents(text)
    assert all(c.kind == "field" and c.old[0].isupper() for c in changes)
    assert (len(changes) > 0) == (legacy != text)


def test_type_given_as_text_becomes_the_integer() -> None:
    docs = [
        {
            "kind": "AzureIdentity",
            "apiVersion": "aadpodidentity.k8s.io/v1",
            "metadata": {"name": f"i{n}"},
            "spec": {"type": value},
        }
        for n, value in enumerate(["1", "ServicePrincipalCertificate", "userassignedmsi", "7"])
    ]
    after, changes = convert_documents(docs[:3])
    assert [d["spec"]["type"] for d in after] == [1, 2, 0]
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("spec.type", "1", 1),
        ("spec.type", "ServicePrincipalCertificate", 2),
        ("spec.type", "userassignedmsi", 0),
    ]
    assert parse(after[1]).type is IdentityType.SERVICE_PRINCIPAL_CERTIFICATE
    with pytest.raises(ValidationError) as caught:
        convert_documents(docs)
    assert caught.value.path == "spec.type"
    assert caught.value.obj == "item 3: AzureIdentity i3"


def test_legacy_type_is_read_by_the_models() -> None:
    # Before 'Type' was a legacy spelling, 'Type: 1' silently parsed as type 0.
    identity = AzureIdentity.from_dict({"metadata": {"name": "x"}, "spec": {"Type": 1}})
    assert identity.type is IdentityType.SERVICE_PRINCIPAL
    assert identity.to_dict()["spec"] == {"type": 1}


def test_both_spellings_with_the_same_value_keep_one() -> None:
    doc = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": "b"},
        "spec": {"Selector": "a", "selector": "a", "AzureIdentity": None, "azureIdentity": "i"},
    }
    (after,), changes = convert_documents([doc])
    assert after["spec"] == {"selector": "a", "azureIdentity": "i"}
    assert [c.path for c in changes] == ["spec.AzureIdentity", "spec.Selector"]


def test_both_spellings_with_different_values_are_refused() -> None:
    doc = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": "i"},
        "spec": {"clientID": "a", "ClientID": "b"},
    }
    with pytest.raises(ValidationError, match="given as both 'clientID' and 'ClientID'"):
        convert_documents([{"kind": "Pod"}, doc])


def test_invalid_selectors_rename_the_pod_labels_that_carry_them() -> None:
    binding = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"azureIdentity": "web", "selector": "my app!"},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"aadpodidbinding": "my app!"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web", "aadpodidbinding": "my app!"}},
            "template": {"metadata": {"labels": {"app": "web", "aadpodidbinding": "my app!"}}},
        },
    }
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "jobTemplate": {
                "spec": {"template": {"metadata": {"labels": {"aadpodidbinding": "my app!"}}}}
            }
        },
    }
    after, changes = convert_documents([deployment, binding, cronjob])
    assert after[1]["spec"]["selector"] == "my-app"
    assert after[0]["spec"]["template"]["metadata"]["labels"]["aadpodidbinding"] == "my-app"
    assert after[0]["spec"]["selector"]["matchLabels"]["aadpodidbinding"] == "my-app"
    assert [(c.index, c.path) for c in changes] == [
        (0, "metadata.labels.aadpodidbinding"),
        (0, "spec.selector.matchLabels.aadpodidbinding"),
        (0, "spec.template.metadata.labels.aadpodidbinding"),
        (1, "spec.selector"),
        (2, "spec.jobTemplate.spec.template.metadata.labels.aadpodidbinding"),
    ]
    # Only the identity, which is not in these documents, is left to say.
    assert [(f.index, f.problem.path) for f in validate_documents(after)] == [
        (1, "spec.azureIdentity")
    ]


def test_label_selector_mode_moves_the_selector() -> None:
    after, changes = convert_documents(documents(SEED), label_selectors=True)
    assert after[1]["spec"] == {
        "azureIdentity": "my-identity",
        "labelSelector": {"matchLabels": {"aadpodidbinding": "my_app"}},
    }
    assert changes[-1] == Change(
        index=1,
        obj="AzureIdentityBinding my_identity_binding",
        path="spec.selector",
        kind="field",
        old="selector",
        new="labelSelector.matchLabels.aadpodidbinding",
    )
    binding = parse(after[1])
    assert isinstance(binding, AzureIdentityBinding)
    assert binding.matches({"aadpodidbinding": "my_app"}, service_account="default")
    assert not binding.matches({"aadpodidbinding": "other"}, service_account="default")
    again, more = convert_documents(after, label_selectors=True)
    assert (again, more) == (after, [])


def test_renames_that_would_merge_two_objects_are_refused() -> None:
    def identity(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "aadpodidentity.k8s.io/v1",
            "kind": "AzureIdentity",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {"type": 0},
        }

    with pytest.raises(ValidationError) as caught:
        convert_documents([identity("web-id"), identity("Web_ID")])
    assert caught.value.path == "metadata.name"
    assert "the new name of AzureIdentity 'web-id' too" in str(caught.value)
    # The same object twice, or in different namespaces, is not a clash.
    other = identity("Web_ID")
    other["metadata"]["namespace"] = "prod"
    after, _ = convert_documents([identity("web-id"), other, copy.deepcopy(other)])
    assert [d["metadata"]["name"] for d in after] == ["web-id", "web-id", "web-id"]


def test_assigned_identities_convert_their_embedded_objects() -> None:
    assigned = {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureAssignedIdentity",
        "metadata": {"name": "pod-default-my-identity"},
        "spec": {
            "azureIdentityRef": {
                "metadata": {"name": "my_identity"},
                "spec": {"Type": 0, "ClientID": CLIENT_ID},
            },
            "azureBindingRef": {
                "metadata": {"name": "b"},
                "spec": {"AzureIdentity": "my_identity", "Selector": "x"},
            },
            "pod": "pod",
            "podNamespace": "default",
            "nodename": "node",
        },
    }
    (after,), changes = convert_documents([assigned])
    assert after["spec"]["azureIdentityRef"] == {
        "metadata": {"name": "my-identity"},
        "spec": {"type": 0, "clientID": CLIENT_ID},
    }
    assert after["spec"]["azureBindingRef"]["spec"] == {
        "azureIdentity": "my-identity",
        "selector": "x",
    }
    assert "spec.azureIdentityRef.spec.ClientID" in {c.path for c in changes}


def test_other_documents_pass_through_unchanged() -> None:
    docs = [["a", "list"], "text", {"kind": "Secret", "data": {"Selector": "x"}}]
    after, changes = convert_documents(docs)
    assert after == docs
    assert changes == []


_LEGACY = {
    "resourceID": "ResourceID",
    "clientID": "ClientID",
    "tenantID": "TenantID",
    "clientPassword": "ClientPassword",
    "azureIdentity": "AzureIdentity",
    "selector": "Selector",
    "podLabels": "PodLabels",
    "type": "Type",
}


def _legacify(data: dict[str, Any], pick: st.DataObject) -> dict[str, Any]:
    out = copy.deepcopy(data)
    spec = out.get("spec")
    if isinstance(spec, dict):
        out["spec"] = {
            (_LEGACY[k] if k in _LEGACY and pick.draw(st.booleans()) else k): v
            for k, v in spec.items()
        }
    return out


@settings(max_examples=60, deadline=None)
@given(data=resource_dicts, pick=st.data())
def test_spelling_does_not_matter_and_conversion_is_idempotent(
    data: dict[str, Any], pick: st.DataObject
) -> None:
    legacy = _legacify(data, pick)
    expected, _ = convert_documents([data])
    converted, _ = convert_documents([legacy])
    assert converted == expected
    again, changes = convert_documents(converted)
    assert again == converted
    assert changes == []
    model, original = parse(converted[0]), parse(data)
    if data["kind"] in ("AzureIdentity", "AzurePodIdentityException"):
        # Only names may differ: the same object otherwise.
        assert model == attrs.evolve(original, metadata=model.metadata)


def test_the_output_is_plain_yaml() -> None:
    after, _ = convert_documents(documents(SEED))
    text = yaml.safe_dump_all(after, sort_keys=False)
    assert "ClientID" not in text
    assert "my_identity_binding" not in text
    assert documents(text) == after


def test_list_documents_stand_for_their_items() -> None:
    # What `kubectl get azureidentities,azureidentitybindings -o yaml` prints.
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "aadpodidentity.k8s.io/v1",
                "kind": "AzureIdentity",
                "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"type": 0, "ClientID": CLIENT_ID, "resourceID": RESOURCE_ID},
            },
            {
                "apiVersion": "aadpodidentity.k8s.io/v1",
                "kind": "AzureIdentityBinding",
                "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"azureIdentity": "Web_Identity", "selector": "web"},
            },
        ],
    }
    (after,), changes = convert_documents([listing])
    assert [(c.index, c.path, c.old, c.new) for c in changes] == [
        (0, "items[0].spec.ClientID", "ClientID", "clientID"),
        (0, "items[1].spec.azureIdentity", "Web_Identity", "web-identity"),
    ]
    assert after["items"][0]["spec"]["clientID"] == CLIENT_ID
    assert [(f.problem.path, f.convertible) for f in validate_documents([listing])] == [
        ("items[0].spec.ClientID", True),
        ("items[1].spec.azureIdentity", True),  # not a valid name,
        ("items[1].spec.azureIdentity", False),  # and not one of the identities listed
    ]
