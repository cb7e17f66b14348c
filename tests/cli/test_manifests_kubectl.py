"""Converted manifests are accepted by an API server: ``kubectl apply --dry-run=server``.

The Kubernetes emulator serves podidentity's CRDs and validates names, types and schemas as
the real API server does; kubectl (the real binary) is its client.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from podidentity.cli import main
from podidentity.models import AzureIdentityBinding, is_pod_identity_object, parse
from podidentity.testing.kube import KubeEmulator
from tests.kubectl import run_kubectl
from tests.models.test_convert import MANIFESTS, documents

CLIENT = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeEmulator]:
    with KubeEmulator(tls=True, plugins=False) as emulator:
        yield emulator


def kubectl(cluster: KubeEmulator, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kubectl(cluster.kubeconfig_path, home, *args)


def convert(path: Path, out: Path) -> Path:
    result = CliRunner().invoke(main, ["convert", str(path)])
    assert result.exit_code == 0, result.output
    out.write_text(result.stdout)
    return out


def test_the_seed_is_refused_before_and_accepted_after_convert(
    cluster: KubeEmulator, seed: Path, tmp_path: Path
) -> None:
    before = kubectl(cluster, tmp_path, "apply", "--dry-run=server", "-f", str(seed))
    assert before.returncode != 0
    assert 'AzureIdentity.aadpodidentity.k8s.io "my_identity" is invalid' in before.stderr
    converted = convert(seed, tmp_path / "converted.yaml")
    after = kubectl(cluster, tmp_path, "apply", "--dry-run=server", "-f", str(converted))
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines() == [
        "azureidentity.aadpodidentity.k8s.io/my-identity created (server dry run)",
        "azureidentitybinding.aadpodidentity.k8s.io/my-identity-binding created (server dry run)",
        "pod/demo created (server dry run)",
    ]
    # A dry run stores nothing.
    assert cluster.list("azureidentities", namespace="default") == []


def test_converted_upstream_manifests_are_accepted(cluster: KubeEmulator, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "blob"}})
    for path in MANIFESTS:
        out = convert(path, tmp_path / path.name)
        done = kubectl(cluster, tmp_path, "apply", "--dry-run=server", "-f", str(out))
        objects = [d for d in documents(out.read_text()) if is_pod_identity_object(d)]
        for obj in objects:
            line = f"{obj['kind'].lower()}.aadpodidentity.k8s.io/{obj['metadata']['name']}"
            assert f"{line} created (server dry run)" in done.stdout, done.stderr
        if "Secret" in out.read_text():
            # Upstream's Secrets hold placeholders ('CLIENT_SECRET') where base64 belongs: the
            # API server refuses those, and only those.
            assert done.returncode == 1
            assert done.stderr.count("Error from server") == 1
            assert 'Secret in version "v1" cannot be handled as a Secret: illegal base64' in (
                done.stderr
            )
        else:
            assert done.returncode == 0, f"{path.name}: {done.stderr}"


def test_label_selector_output_is_accepted_and_stored_as_converted(
    cluster: KubeEmulator, seed: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["convert", "--label-selector", str(seed)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "selector.yaml"
    out.write_text(result.stdout)
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "selectors"}})
    done = kubectl(cluster, tmp_path, "create", "-n", "selectors", "-f", str(out))
    assert done.returncode == 0, done.stderr
    stored = cluster.get("azureidentitybindings", "my-identity-binding", namespace="selectors")
    binding = parse(stored)
    assert isinstance(binding, AzureIdentityBinding)
    assert binding.azure_identity == "my-identity"
    assert binding.selector == ""
    assert binding.matches({"aadpodidbinding": "my_app"}, service_account="default")
    identity = parse(cluster.get("azureidentities", "my-identity", namespace="selectors"))
    assert identity.problems() == []


def test_kubectl_get_output_validates_as_it_is(cluster: KubeEmulator, tmp_path: Path) -> None:
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "listed"}})
    for name, spec in [
        ("web", {"type": 3, "clientID": CLIENT, "tenantID": CLIENT}),
        ("old", {"type": 3, "ClientID": CLIENT, "tenantID": CLIENT}),  # our CRD keeps it
    ]:
        cluster.create(
            {
                "apiVersion": "aadpodidentity.k8s.io/v1",
                "kind": "AzureIdentity",
                "metadata": {"name": name, "namespace": "listed"},
                "spec": spec,
            }
        )
    listed = kubectl(cluster, tmp_path, "get", "azureidentities", "-n", "listed", "-o", "yaml")
    assert listed.returncode == 0, listed.stderr
    result = CliRunner().invoke(main, ["validate", "--output", "json", "-"], input=listed.stdout)
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert report["checked"] == 2
    assert [(f["object"], f["path"], f["convertible"]) for f in report["findings"]] == [
        ("AzureIdentity listed/old", "items[0].spec.ClientID", True)
    ]
