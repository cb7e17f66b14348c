"""Upstream's own manifests, load_yaml, and the package's re-exports."""

from __future__ import annotations

from pathlib import Path

import pytest

import podidentity
from podidentity import models
from podidentity.errors import ValidationError
from podidentity.models import AzureIdentity, AzureIdentityBinding, load_yaml

# Upstream's files, vendored unchanged (MIT) so a fresh clone tests against them.
COMPAT = Path(__file__).resolve().parents[1] / "compat" / "aad-pod-identity"
MANIFESTS = sorted(p for p in COMPAT.glob("*.yaml") if not p.name.startswith("config_crd"))


def test_the_upstream_manifests_are_there() -> None:
    # Guards the parametrised test below against silently running zero cases.
    assert len(MANIFESTS) >= 8


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_upstream_manifest_parses(path: Path) -> None:
    objects = load_yaml(path.read_text())
    assert objects
    for obj in objects:
        if isinstance(obj, dict):
            assert obj["kind"] in {"Secret", "Deployment"}
        else:
            assert models.parse(obj.to_dict()) == obj
            for problem in obj.problems():  # placeholders are findings, not exceptions
                assert problem.path


def test_upstream_placeholders_become_problems() -> None:
    path = COMPAT / "examples_java-blob_deployment_azureidentity.yaml"
    (identity,) = load_yaml(path.read_text())
    assert isinstance(identity, AzureIdentity)
    paths = {p.path for p in identity.problems()}
    assert paths == {"spec.resourceID", "spec.clientID"}


LEGACY = """
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: demo_aks_pod_id
spec:
  type: 0
  ResourceID: /subscriptions/x
  ClientID: CLIENT_ID
---
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata: {name: demo-binding, creationTimestamp: 2024-05-01T12:00:00Z, labels: {day: 2024-05-01}}
spec: {AzureIdentity: demo_aks_pod_id, Selector: demo}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {clientSecret: c2VjcmV0}
"""


def test_load_yaml_multi_document() -> None:
    identity, binding, secret = load_yaml(LEGACY)
    assert isinstance(identity, AzureIdentity)
    assert identity.client_id == "CLIENT_ID"
    assert identity.to_dict()["spec"] == {
        "type": 0,
        "resourceID": "/subscriptions/x",
        "clientID": "CLIENT_ID",
    }
    assert isinstance(binding, AzureIdentityBinding)
    assert binding.metadata.labels == {"day": "2024-05-01"}  # timestamps stay text, as in kubectl
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"clientSecret": "c2VjcmV0"},
    }
    assert load_yaml("") == []
    assert load_yaml("---\n---\n") == []


def test_load_yaml_errors_name_document_and_line() -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml("a: 1\n---\nkind: [\n")
    message = str(info.value)
    assert "document 2" in message
    assert "line 4" in message
    bad = (
        "a: 1\n---\napiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\n"
        "metadata: {name: x}\nspec: {type: 9}\n"
    )
    with pytest.raises(ValidationError) as info:
        load_yaml(bad)
    assert (
        str(info.value)
        == "document 2 (line 3): AzureIdentity x: spec.type: expected 0, 1, 2 or 3, got 9"
    )
    with pytest.raises(ValidationError, match=r"document 1 .*expected one of"):
        load_yaml(
            "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentities\nmetadata: {name: x}\n"
        )
    with pytest.raises(ValidationError, match=r"document 1 .*expected an object"):
        load_yaml("- a\n- b\n")
    with pytest.raises(ValidationError, match="document 1: YAML nested too deeply"):
        load_yaml("[" * 5000)


def test_public_names_are_exported_and_sorted() -> None:
    for module in (podidentity, models):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), name
    assert podidentity.AzureIdentity is models.AzureIdentity
