"""Owner references are validated and followed, as the API server and the garbage collector do.

Through the official clients over HTTP (dict bodies where the generated models would refuse
the invalid references client-side).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator


def owner_ref(obj: Any, **extra: Any) -> dict[str, Any]:
    meta = obj.metadata
    return {
        "apiVersion": obj.api_version or "v1",
        "kind": obj.kind or "ConfigMap",
        "name": meta.name,
        "uid": meta.uid,
        **extra,
    }


def config_map(name: str, *refs: dict[str, Any], finalizers: list[str] | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name}
    if refs:
        metadata["ownerReferences"] = list(refs)
    if finalizers:
        metadata["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


def names(core: kubernetes.client.CoreV1Api) -> set[str]:
    return {c.metadata.name for c in core.list_namespaced_config_map("default").items}


def refused(response: httpx.Response) -> str:
    assert response.status_code == 422
    body = response.json()
    assert body["reason"] == "Invalid"
    return str(body["message"])


def test_owner_references_are_validated(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    # Raw HTTP: the generated client refuses these references before sending them.
    http = httpx.Client(base_url=kube.url)
    path = "/api/v1/namespaces/default/configmaps"
    owner = core.create_namespaced_config_map("default", config_map("owner"))
    ref = owner_ref(owner)
    for missing, message in (
        ("uid", 'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty'),
        ("name", 'metadata.ownerReferences.name: Invalid value: "": name must not be empty'),
        ("kind", 'metadata.ownerReferences.kind: Invalid value: "": kind must not be empty'),
        (
            "apiVersion",
            'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
        ),
    ):
        bad = {k: v for k, v in ref.items() if k != missing}
        response = http.post(path, json=config_map("dep", bad))
        assert refused(response) == f'ConfigMap "dep" is invalid: {message}'
    other = core.create_namespaced_config_map("default", config_map("other"))
    two = [owner_ref(owner, controller=True), owner_ref(other, controller=True)]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", config_map("dep", *two))
    assert caught.value.status == 422
    assert (
        'Only one reference can have Controller set to true. Found "true" in references for '
        "ConfigMap/owner and ConfigMap/other"
    ) in json.loads(caught.value.body)["message"]
    # Updates are checked too.
    dep = core.create_namespaced_config_map("default", config_map("dep", ref))
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            dep.metadata.name,
            "default",
            [{"op": "remove", "path": "/metadata/ownerReferences/0/uid"}],
        )
    assert caught.value.status == 422
    assert "uid must not be empty" in json.loads(caught.value.body)["message"]
    http.close()


def test_background_deletion_takes_the_dependents(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    owner = core.create_namespaced_config_map("default", config_map("owner"))
    keeper = core.create_namespaced_config_map("default", config_map("keeper"))
    core.create_namespaced_config_map("default", config_map("child", owner_ref(owner)))
    grandchild_owner = core.read_namespaced_config_map("child", "default")
    core.create_namespaced_config_map(
        "default", config_map("grandchild", owner_ref(grandchild_owner))
    )
    core.create_namespaced_config_map(
        "default", config_map("shared", owner_ref(owner), owner_ref(keeper))
    )
    core.delete_namespaced_config_map("owner", "default")  # Background is the default
    kube.settle()
    assert names(core) == {"keeper", "shared"}
    # A dependent with another live owner only loses the dangling reference.
    shared = core.read_namespaced_config_map("shared", "default")
    assert [r.name for r in shared.metadata.owner_references] == ["keeper"]


def test_foreground_deletion_waits_for_blocking_dependents(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    owner = core.create_namespaced_config_map("default", config_map("owner"))
    core.create_namespaced_config_map(
        "default",
        config_map(
            "blocker",
            owner_ref(owner, blockOwnerDeletion=True),
            finalizers=["example.com/hold"],
        ),
    )
    core.create_namespaced_config_map("default", config_map("free", owner_ref(owner)))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    kube.settle()
    owner_now = core.read_namespaced_config_map("owner", "default")
    assert owner_now.metadata.deletion_timestamp is not None
    assert owner_now.metadata.finalizers == ["foregroundDeletion"]
    blocker = core.read_namespaced_config_map("blocker", "default")
    assert blocker.metadata.deletion_timestamp is not None  # deleted, held by its finalizer
    assert names(core) == {"owner", "blocker"}
    core.patch_namespaced_config_map("blocker", "default", {"metadata": {"finalizers": None}})
    kube.settle()
    assert names(core) == set()


def test_orphan_deletion_keeps_the_dependents_without_the_reference(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    owner = core.create_namespaced_config_map("default", config_map("owner"))
    core.create_namespaced_config_map("default", config_map("child", owner_ref(owner)))
    core.delete_namespaced_config_map(
        "owner", "default", body=kubernetes.client.V1DeleteOptions(propagation_policy="Orphan")
    )
    kube.settle()
    assert names(core) == {"child"}
    assert core.read_namespaced_config_map("child", "default").metadata.owner_references is None


@pytest.mark.parametrize(
    ("policy", "finalizer"), [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")]
)
def test_the_policy_puts_its_finalizer_on_the_owner(
    kube: KubeEmulator, policy: str, finalizer: str
) -> None:
    with httpx.Client(base_url=kube.url) as http:
        http.post("/api/v1/namespaces/default/configmaps", json=config_map("owner"))
        response = http.delete(
            "/api/v1/namespaces/default/configmaps/owner", params={"propagationPolicy": policy}
        )
    assert response.status_code == 200
    assert response.json()["metadata"]["finalizers"] == [finalizer]
    assert response.json()["metadata"]["deletionTimestamp"]
    kube.settle()  # the collector finds nothing to wait for and lets the owner go
    assert kube.list("configmaps", namespace="default") == []


def test_a_cluster_scoped_owner_takes_namespaced_dependents(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    node = core.create_node({"metadata": {"name": "n1"}})
    ref = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": node.metadata.uid}
    core.create_namespaced_config_map("default", config_map("per-node", ref))
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_secret("team", {"metadata": {"name": "s", "ownerReferences": [ref]}})
    core.delete_node("n1")
    kube.settle()
    assert names(core) == set()
    assert core.list_namespaced_secret("team").items == []


def test_a_dependent_of_an_absent_owner_is_collected(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    core.create_namespaced_config_map("default", config_map("orphaned", ghost))
    kube.settle()
    assert names(core) == set()
    # A namespaced owner in another namespace does not count either.
    core.create_namespace({"metadata": {"name": "elsewhere"}})
    remote = core.create_namespaced_config_map("elsewhere", config_map("owner"))
    core.create_namespaced_config_map("default", config_map("cross", owner_ref(remote)))
    kube.settle()
    assert names(core) == set()


def test_pods_owned_by_a_config_map_go_with_it(core: kubernetes.client.CoreV1Api) -> None:
    with KubeEmulator() as kube:
        kube.cluster.add_node("n1")
        client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
        try:
            api = kubernetes.client.CoreV1Api(client)
            owner = api.create_namespaced_config_map("default", config_map("owner"))
            api.create_namespaced_pod(
                "default",
                {
                    "metadata": {"name": "p", "ownerReferences": [owner_ref(owner)]},
                    "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "app", "image": "nginx:1.27"}],
                    },
                },
            )
            kube.wait_for_pod_running("p")
            api.delete_namespaced_config_map("owner", "default")
            kube.wait_for_deletion("pods", "p", namespace="default")
            assert api.list_namespaced_pod("default").items == []
        finally:
            client.close()
