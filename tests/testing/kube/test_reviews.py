"""Access reviews through the official client and kubectl: ``auth can-i`` and ``auth whoami``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator, ServiceAccountIdentity
from tests.kubectl import Kubectl, run_kubectl

RBAC = "rbac.authorization.k8s.io"
NAMESPACE = "reviews"


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator(tls=True) as emulator:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        yield emulator


@pytest.fixture(scope="module")
def robot(kube: KubeEmulator) -> ServiceAccountIdentity:
    """Reads pods and may read one config map in the test namespace; nothing else."""
    return kube.service_account(
        "robot",
        namespace=NAMESPACE,
        rules=[
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
            {
                "verbs": ["get"],
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["settings"],
            },
        ],
    )


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl-home")

    def run(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return run_kubectl(kubeconfig, home, *args)

    return run


def authz(kubeconfig: Path) -> kubernetes.client.AuthorizationV1Api:
    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    return kubernetes.client.AuthorizationV1Api(client)


def test_subject_access_review_answers_for_any_user(
    kube: KubeEmulator, robot: ServiceAccountIdentity
) -> None:
    api = authz(kube.kubeconfig_path)  # type: ignore[arg-type]
    allowed = api.create_subject_access_review(
        {
            "spec": {
                "user": robot.username,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {"namespace": NAMESPACE, "verb": "list", "resource": "pods"},
            }
        }
    ).status
    assert allowed.allowed is True
    assert allowed.reason.startswith('RBAC: allowed by RoleBinding "robot-')
    assert allowed.reason.endswith(f'to ServiceAccount "robot/{NAMESPACE}"')
    denied = api.create_subject_access_review(
        {
            "spec": {
                "user": robot.username,
                "resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"},
            }
        }
    ).status
    assert denied.allowed is False
    named = {"namespace": NAMESPACE, "verb": "get", "resource": "configmaps"}
    assert (
        api.create_subject_access_review(
            {"spec": {"user": robot.username, "resourceAttributes": {**named, "name": "settings"}}}
        ).status.allowed
        is True
    )
    assert (
        api.create_subject_access_review(
            {"spec": {"user": robot.username, "resourceAttributes": {**named, "name": "other"}}}
        ).status.allowed
        is False
    )
    # Discovery is for every authenticated user, through system:discovery.
    discovery = api.create_subject_access_review(
        {
            "spec": {
                "groups": ["system:authenticated"],
                "nonResourceAttributes": {"path": "/apis/apps", "verb": "get"},
            }
        }
    ).status
    assert discovery.allowed is True
    with pytest.raises(ApiException) as invalid:
        api.create_subject_access_review({"spec": {"resourceAttributes": {"verb": "get"}}})
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["message"] == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
        "at least one of user or group must be specified"
    )


def test_subject_access_reviews_need_permission(
    kube: KubeEmulator, robot: ServiceAccountIdentity
) -> None:
    with pytest.raises(ApiException) as caught:
        authz(robot.kubeconfig_path).create_subject_access_review(
            {"spec": {"user": "someone", "nonResourceAttributes": {"path": "/", "verb": "get"}}}
        )
    assert caught.value.status == 403
    # system:auth-delegator is what a component that checks others' access is bound to.
    checker = kube.service_account("checker", namespace=NAMESPACE)
    kube.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "checker-delegator"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "ServiceAccount", "name": "checker", "namespace": NAMESPACE}],
        }
    )
    review = authz(checker.kubeconfig_path).create_subject_access_review(
        {"spec": {"user": "someone", "nonResourceAttributes": {"path": "/version", "verb": "get"}}}
    )
    assert review.status.allowed is False  # "someone" is in no group


def test_local_and_self_reviews(robot: ServiceAccountIdentity) -> None:
    api = authz(robot.kubeconfig_path)
    mine = api.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {"namespace": NAMESPACE, "verb": "watch", "resource": "pods"}
            }
        }
    )
    assert mine.status.allowed is True
    secrets = api.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {"namespace": NAMESPACE, "verb": "get", "resource": "secrets"}
            }
        }
    )
    assert secrets.status.allowed is False
    status = api.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "namespace": NAMESPACE,
                    "verb": "get",
                    "resource": "pods",
                    "subresource": "status",
                }
            }
        }
    )
    assert status.status.allowed is False
    rules = api.create_self_subject_rules_review({"spec": {"namespace": NAMESPACE}}).status
    granted = [(r.verbs, r.api_groups, r.resources) for r in rules.resource_rules]
    assert (["get", "list", "watch"], [""], ["pods"]) in granted
    assert [
        u for r in rules.non_resource_rules for u in r.non_resource_urls if u.startswith("/version")
    ][:2] == ["/version", "/version/"]
    assert rules.incomplete is False
    # A local review is for its own namespace only, and needs permission (admin has it).
    with pytest.raises(ApiException) as local:
        api.create_namespaced_local_subject_access_review(
            NAMESPACE,
            {
                "spec": {
                    "user": robot.username,
                    "resourceAttributes": {
                        "namespace": NAMESPACE,
                        "verb": "get",
                        "resource": "pods",
                    },
                }
            },
        )
    assert local.value.status == 403


def test_local_subject_access_review_as_admin(
    kube: KubeEmulator, robot: ServiceAccountIdentity
) -> None:
    api = authz(kube.kubeconfig_path)  # type: ignore[arg-type]
    review = api.create_namespaced_local_subject_access_review(
        NAMESPACE,
        {
            "metadata": {"namespace": NAMESPACE},
            "spec": {
                "user": robot.username,
                "resourceAttributes": {"namespace": NAMESPACE, "verb": "list", "resource": "pods"},
            },
        },
    )
    assert review.status.allowed is True
    with pytest.raises(ApiException) as elsewhere:
        api.create_namespaced_local_subject_access_review(
            NAMESPACE,
            {
                "spec": {
                    "user": robot.username,
                    "resourceAttributes": {
                        "namespace": "default",
                        "verb": "list",
                        "resource": "pods",
                    },
                }
            },
        )
    assert elsewhere.value.status == 400


def test_kubectl_auth_can_i(
    kubectl: Kubectl, kube: KubeEmulator, robot: ServiceAccountIdentity
) -> None:
    yes = kubectl(robot.kubeconfig_path, "auth", "can-i", "list", "pods", "-n", NAMESPACE)
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes")
    no = kubectl(robot.kubeconfig_path, "auth", "can-i", "list", "pods", "-n", "default")
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    subresource = kubectl(
        robot.kubeconfig_path,
        "auth",
        "can-i",
        "patch",
        "pods",
        "--subresource=status",
        "-n",
        NAMESPACE,
    )
    assert subresource.stdout.strip() == "no"
    named = kubectl(
        robot.kubeconfig_path, "auth", "can-i", "get", "configmaps/settings", "-n", NAMESPACE
    )
    assert named.stdout.strip() == "yes"
    url = kubectl(robot.kubeconfig_path, "auth", "can-i", "get", "/version")
    assert url.stdout.strip() == "yes"
    admin = kube.kubeconfig_path
    assert admin is not None
    assert kubectl(admin, "auth", "can-i", "*", "*", "--all-namespaces").stdout.strip() == "yes"
    # --as impersonates: the admin may, and then sees the robot's answer.
    as_robot = kubectl(
        admin, "auth", "can-i", "list", "secrets", "-n", NAMESPACE, f"--as={robot.username}"
    )
    assert as_robot.stdout.strip() == "no"
    as_robot_pods = kubectl(
        admin, "auth", "can-i", "list", "pods", "-n", NAMESPACE, f"--as={robot.username}"
    )
    assert as_robot_pods.stdout.strip() == "yes"
    listed = kubectl(robot.kubeconfig_path, "auth", "can-i", "--list", "-n", NAMESPACE)
    assert listed.returncode == 0, listed.stderr
    assert "pods" in listed.stdout
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed.stdout


def test_kubectl_auth_whoami(
    kubectl: Kubectl, kube: KubeEmulator, robot: ServiceAccountIdentity
) -> None:
    mine = kubectl(robot.kubeconfig_path, "auth", "whoami", "-o", "json")
    assert mine.returncode == 0, mine.stderr
    info = json.loads(mine.stdout)["status"]["userInfo"]
    assert info["username"] == robot.username
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{NAMESPACE}",
        "system:authenticated",
    ]
    admin = kube.kubeconfig_path
    assert admin is not None
    table = kubectl(admin, "auth", "whoami")
    assert "kubernetes-admin" in table.stdout
    assert "system:masters" in table.stdout


def test_other_protobuf_bodies_are_still_refused(kube: KubeEmulator) -> None:
    import ssl

    import httpx

    assert kube.ca_bundle is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=str(kube.ca_bundle))) as http:
        headers = {
            "Authorization": f"Bearer {kube.token}",
            "Content-Type": "application/vnd.kubernetes.protobuf",
        }
        # A Pod in the k8s protobuf envelope: typeMeta {apiVersion: v1, kind: Pod}.
        pod = b"k8s\x00" + b"\x0a\x09\x0a\x02v1\x12\x03Pod" + b"\x12\x00"
        refused = http.post(
            f"{kube.url}/api/v1/namespaces/default/pods", headers=headers, content=pod
        )
        garbage = http.post(
            f"{kube.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            headers=headers,
            content=b"k8s\x00\x0a\xff",
        )
    assert refused.status_code == 415
    assert garbage.status_code == 400
