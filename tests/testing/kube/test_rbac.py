"""RBAC authorization over real HTTP: service-account tokens try to reach what they must not.

Security first: every rule that keeps an identity away from an object has a test here that
tries to break it (another namespace, a resource name, a subresource, a cluster-scoped list, a
binding to a missing role, a revoked binding, impersonation).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import APIError, KubeEmulator, ServiceAccountIdentity

RBAC = "rbac.authorization.k8s.io"
READ_PODS = {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeEmulator]:
    """One HTTPS emulator for the module; each test works in its own namespaces."""
    with KubeEmulator(tls=True) as emulator:
        yield emulator


_counter = iter(range(1_000_000))


@pytest.fixture
def ns(kube: KubeEmulator) -> Callable[[], str]:
    """Makes fresh namespaces."""

    def make() -> str:
        name = f"rbac{next(_counter)}"
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    return make


def client_for(identity: ServiceAccountIdentity) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(identity.kubeconfig_path))


def forbidden(call: Callable[[], Any]) -> dict[str, Any]:
    """The Status of a call that must be refused with 403."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    status: dict[str, Any] = json.loads(caught.value.body)
    assert status["reason"] == "Forbidden"
    assert status["kind"] == "Status"
    return status


def config_map(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def bind(
    kube: KubeEmulator,
    namespace: str | None,
    name: str,
    role: tuple[str, str],
    subjects: list[dict[str, Any]],
) -> None:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    kube.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC, "kind": role[0], "name": role[1]},
            "subjects": subjects,
        }
    )


def sa(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


# --- namespaces ---------------------------------------------------------------------------


def test_a_token_in_one_namespace_cannot_read_another(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home, other = ns(), ns()
    robot = kube.service_account("robot", namespace=home, rules=[READ_PODS])
    with client_for(robot) as client:
        core = kubernetes.client.CoreV1Api(client)
        assert core.list_namespaced_pod(home).items == []
        status = forbidden(lambda: core.list_namespaced_pod(other))
        assert status["message"] == (
            f'pods is forbidden: User "system:serviceaccount:{home}:robot" cannot list '
            f'resource "pods" in API group "" in the namespace "{other}"'
        )
        assert status["details"] == {"kind": "pods"}
        assert status["code"] == 403
        # Nor across all namespaces at once: that is a cluster-scoped list.
        cluster = forbidden(lambda: core.list_pod_for_all_namespaces())
        assert cluster["message"] == (
            f'pods is forbidden: User "system:serviceaccount:{home}:robot" cannot list '
            'resource "pods" in API group "" at the cluster scope'
        )
        # A pod that does not exist is still a 403, not a 404: authorization comes first.
        named = forbidden(lambda: core.read_namespaced_pod("ghost", other))
        assert named["message"].startswith('pods "ghost" is forbidden: User ')
        assert named["details"] == {"name": "ghost", "kind": "pods"}
        # Reading is not writing.
        write = forbidden(lambda: core.create_namespaced_pod(home, {"metadata": {"name": "x"}}))
        assert "cannot create resource" in write["message"]


def test_a_role_binding_to_a_cluster_role_is_limited_to_its_namespace(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home, other = ns(), ns()
    robot = kube.service_account("editor", namespace=home)
    bind(kube, home, "editor-edit", ("ClusterRole", "edit"), [sa("editor", home)])
    with client_for(robot) as client:
        core = kubernetes.client.CoreV1Api(client)
        assert core.create_namespaced_config_map(home, config_map("mine")).metadata.name == "mine"
        assert core.read_namespace(home).metadata.name == home  # "this" namespace, via view
        forbidden(lambda: core.create_namespaced_config_map(other, config_map("theirs")))
        forbidden(lambda: core.read_namespace(other))
        forbidden(lambda: core.list_namespace())
        # edit does not reach the RBAC objects of its own namespace (admin does).
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        status = forbidden(lambda: rbac.list_namespaced_role_binding(home))
        assert status["message"].endswith(
            f'cannot list resource "rolebindings" in API group "{RBAC}" in the namespace "{home}"'
        )
        assert status["details"] == {"group": RBAC, "kind": "rolebindings"}


def test_a_role_is_looked_up_in_the_binding_namespace_only(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home, other = ns(), ns()
    kube.create(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": other},
            "rules": [READ_PODS],
        }
    )
    robot = kube.service_account("robot", namespace=home)
    # A binding in `home` naming Role "pod-reader" means home's Role, which does not exist.
    bind(kube, home, "reader", ("Role", "pod-reader"), [sa("robot", home)])
    with client_for(robot) as client:
        core = kubernetes.client.CoreV1Api(client)
        status = forbidden(lambda: core.list_namespaced_pod(home))
        assert status["message"].endswith(f': RBAC: role.{RBAC} "pod-reader" not found')
        forbidden(lambda: core.list_namespaced_pod(other))


def test_cluster_role_bindings_grant_everywhere_and_revoking_takes_effect_at_once(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home, other = ns(), ns()
    robot = kube.service_account(
        "watcher",
        namespace=home,
        cluster_rules=[READ_PODS, {"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]}],
    )
    with client_for(robot) as client:
        core = kubernetes.client.CoreV1Api(client)
        assert core.list_namespaced_pod(other).items == []
        assert core.list_pod_for_all_namespaces().items is not None
        core.list_node()
        bindings = kube.list(f"clusterrolebindings.{RBAC}")
        mine = [b for b in bindings if b["subjects"][0].get("name") == "watcher"]
        assert len(mine) == 1
        kube.delete(f"clusterrolebindings.{RBAC}", mine[0]["metadata"]["name"])
        forbidden(lambda: core.list_node())
        forbidden(lambda: core.list_namespaced_pod(other))


def test_binding_to_a_missing_cluster_role_says_so(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home = ns()
    robot = kube.service_account("orphan", namespace=home)
    bind(kube, home, "orphan", ("ClusterRole", "no-such-role"), [sa("orphan", home)])
    with client_for(robot) as client:
        core = kubernetes.client.CoreV1Api(client)
        status = forbidden(lambda: core.list_namespaced_secret(home))
        assert status["message"] == (
            f'secrets is forbidden: User "system:serviceaccount:{home}:orphan" cannot list '
            f'resource "secrets" in API group "" in the namespace "{home}": '
            f'RBAC: clusterrole.{RBAC} "no-such-role" not found'
        )


def test_group_and_user_subjects(kube: KubeEmulator, ns: Callable[[], str]) -> None:
    home, other = ns(), ns()
    first = kube.service_account("first", namespace=home)
    second = kube.service_account("second", namespace=home)
    # Every service account of `home` may read pods in `other`.
    bind(
        kube,
        other,
        "home-accounts",
        ("ClusterRole", "view"),
        [{"kind": "Group", "apiGroup": RBAC, "name": f"system:serviceaccounts:{home}"}],
    )
    # A User subject naming the service account's user name is the same principal.
    bind(
        kube,
        home,
        "first-as-user",
        ("ClusterRole", "edit"),
        [{"kind": "User", "apiGroup": RBAC, "name": first.username}],
    )
    with client_for(first) as one, client_for(second) as two:
        assert kubernetes.client.CoreV1Api(one).list_namespaced_pod(other).items == []
        assert kubernetes.client.CoreV1Api(two).list_namespaced_pod(other).items == []
        kubernetes.client.CoreV1Api(one).create_namespaced_config_map(home, config_map("a"))
        forbidden(
            lambda: kubernetes.client.CoreV1Api(two).create_namespaced_config_map(
                home, config_map("b")
            )
        )


# --- names and subresources ---------------------------------------------------------------


def test_resource_names_limit_gets_and_pin_lists(kube: KubeEmulator, ns: Callable[[], str]) -> None:
    home = ns()
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "allowed", "namespace": home},
        }
    )
    kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": home}}
    )
    robot = kube.service_account(
        "named",
        namespace=home,
        rules=[
            {
                "verbs": ["get", "list", "watch", "update"],
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["allowed"],
            }
        ],
    )
    with client_for(robot) as client:
        core = kubernetes.client.CoreV1Api(client)
        assert core.read_namespaced_config_map("allowed", home).metadata.name == "allowed"
        status = forbidden(lambda: core.read_namespaced_config_map("other", home))
        assert status["message"].startswith('configmaps "other" is forbidden')
        # An unrestricted list names no object, so resourceNames cannot allow it ...
        forbidden(lambda: core.list_namespaced_config_map(home))
        # ... but a list pinned to the name by a field selector does, as on a real server.
        pinned = core.list_namespaced_config_map(home, field_selector="metadata.name=allowed")
        assert [c.metadata.name for c in pinned.items] == ["allowed"]
        forbidden(
            lambda: core.list_namespaced_config_map(home, field_selector="metadata.name=other")
        )
        # The watch ends on a change to "allowed" made once it is listed, not on the server's
        # timeout: anything else the watch let through shows up before that change.
        watch = kubernetes.watch.Watch()
        seen = []
        for event in watch.stream(
            core.list_namespaced_config_map,
            home,
            field_selector="metadata.name=allowed",
            timeout_seconds=30,
        ):
            if event["type"] == "MODIFIED":
                watch.stop()
                break
            seen.append(event["object"].metadata.name)
            kube.patch("configmaps", "allowed", {"data": {"seen": "yes"}}, namespace=home)
        assert seen == ["allowed"]
        # Creating names an object the rule does not list (create is not granted anyway).
        forbidden(lambda: core.create_namespaced_config_map(home, config_map("allowed2")))


def test_a_subresource_is_not_granted_by_its_parent(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home = ns()
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": home},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        }
    )
    everything_on_pods = {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}
    robot = kube.service_account("pods-only", namespace=home, rules=[everything_on_pods])
    status_writer = kube.service_account(
        "status-writer",
        namespace=home,
        rules=[{"verbs": ["patch"], "apiGroups": ["*"], "resources": ["*/status"]}],
    )
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    with client_for(robot) as client, client_for(status_writer) as writer:
        core = kubernetes.client.CoreV1Api(client)
        core.patch_namespaced_pod("web", home, {"metadata": {"labels": {"a": "b"}}})
        status = forbidden(lambda: core.patch_namespaced_pod_status("web", home, patch))
        assert status["message"] == (
            f'pods "web" is forbidden: User "system:serviceaccount:{home}:pods-only" cannot '
            f'patch resource "pods/status" in API group "" in the namespace "{home}"'
        )
        token = forbidden(
            lambda: core.create_namespaced_service_account_token("pods-only", home, {"spec": {}})
        )
        assert 'cannot create resource "serviceaccounts/token"' in token["message"]
        # */status grants the status of every resource, and nothing else.
        status_core = kubernetes.client.CoreV1Api(writer)
        patched = status_core.patch_namespaced_pod_status("web", home, patch)
        assert "Ready" in [c.type for c in patched.status.conditions]
        forbidden(
            lambda: status_core.patch_namespaced_pod("web", home, {"metadata": {"labels": {}}})
        )


def test_leases_and_custom_resources_are_authorized_by_group(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home = ns()
    robot = kube.service_account(
        "leader",
        namespace=home,
        rules=[
            {
                "verbs": ["get", "create", "update"],
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
            }
        ],
    )
    with client_for(robot) as client:
        leases = kubernetes.client.CoordinationV1Api(client)
        created = leases.create_namespaced_lease(
            home, {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}}
        )
        assert created.spec.holder_identity == "me"
        custom = kubernetes.client.CustomObjectsApi(client)
        status = forbidden(
            lambda: custom.list_namespaced_custom_object(
                "aadpodidentity.k8s.io", "v1", home, "azureidentities"
            )
        )
        assert status["message"].endswith(
            'cannot list resource "azureidentities" in API group "aadpodidentity.k8s.io" in the '
            f'namespace "{home}"'
        )


# --- non-resource URLs, the admin, and turning it off ---------------------------------------


def http(kube: KubeEmulator) -> httpx.Client:
    assert kube.ca_bundle is not None
    return httpx.Client(verify=ssl.create_default_context(cafile=str(kube.ca_bundle)))


def test_non_resource_urls_follow_the_bootstrap_policy(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    robot = kube.service_account("plain", namespace=ns())
    headers = {"Authorization": f"Bearer {robot.token}"}
    with http(kube) as client:
        for path in ("/version", "/api", "/apis", "/api/v1", "/healthz", "/openapi/v3"):
            assert client.get(kube.url + path, headers=headers).status_code == 200, path
        # Service accounts may read the issuer documents (and anyone may, anonymously).
        assert client.get(kube.url + "/openid/v1/jwks", headers=headers).status_code == 200
        assert client.get(kube.url + "/openid/v1/jwks").status_code == 200
        # A path no role grants is refused before it is looked up.
        refused = client.get(kube.url + "/metrics", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        f'forbidden: User "{robot.username}" cannot get path "/metrics"'
    )


def test_the_admin_is_in_system_masters_and_may_do_everything(kube: KubeEmulator) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    with client:
        names = [
            r.metadata.name
            for r in kubernetes.client.RbacAuthorizationV1Api(client).list_cluster_role().items
        ]
        review = kubernetes.client.AuthenticationV1Api(client).create_self_subject_review({})
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery"} <= set(names)
    assert "system:masters" in review.status.user_info.groups


def test_authorization_can_be_turned_off() -> None:
    with KubeEmulator(tls=True, authorization=False) as kube:
        robot = kube.service_account("robot")
        with client_for(robot) as client:
            assert kubernetes.client.CoreV1Api(client).list_secret_for_all_namespaces().items == []


async def test_the_aio_client_sees_the_same_403(kube: KubeEmulator, ns: Callable[[], str]) -> None:
    from kubernetes.aio import client as aclient
    from kubernetes.aio import config as aconfig

    home, other = ns(), ns()
    robot = kube.service_account("aio", namespace=home, rules=[READ_PODS])
    configuration = aclient.Configuration()
    await aconfig.load_kube_config(
        config_file=str(robot.kubeconfig_path), client_configuration=configuration
    )
    async with aclient.ApiClient(configuration) as api:
        core = aclient.CoreV1Api(api)
        assert (await core.list_namespaced_pod(home)).items == []
        with pytest.raises(aclient.exceptions.ApiException) as caught:
            await core.list_namespaced_pod(other, watch=True, timeout_seconds=1)
    assert caught.value.status == 403
    assert 'cannot watch resource "pods"' in json.loads(caught.value.body)["message"]


# --- RBAC objects themselves --------------------------------------------------------------


def test_rbac_objects_are_validated_like_the_real_server(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home = ns()
    with kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path)) as client:
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        binding = rbac.create_namespaced_role_binding(
            home,
            {
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": RBAC},
                "subjects": [{"kind": "User", "name": "alice"}],
            },
        )
        # The subject's API group is defaulted, as SetDefaults_Subject does.
        assert binding.subjects[0].api_group == RBAC
        binding.role_ref.name = "edit"
        with pytest.raises(ApiException) as changed:
            rbac.replace_namespaced_role_binding("b", home, binding)
        assert changed.value.status == 422
        assert json.loads(changed.value.body)["message"] == (
            f'RoleBinding.{RBAC} "b" is invalid: roleRef: Invalid value: '
            f'rbac.RoleRef{{APIGroup:"{RBAC}", Kind:"ClusterRole", Name:"view"}}: '
            "cannot change roleRef"
        )
        with pytest.raises(ApiException) as bad_rule:
            rbac.create_namespaced_role(
                home,
                {
                    "metadata": {"name": "r"},
                    "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}],
                },
            )
        assert json.loads(bad_rule.value.body)["message"] == (
            f'Role.{RBAC} "r" is invalid: rules[0].nonResourceURLs: Invalid value: '
            '[]string{"/x"}: namespaced rules cannot apply to non-resource URLs'
        )
        with pytest.raises(ApiException) as bad_subject:
            rbac.create_cluster_role_binding(
                {
                    "metadata": {"name": f"{home}-bad"},
                    "roleRef": {"kind": "Role", "name": "view", "apiGroup": RBAC},
                    "subjects": [{"kind": "ServiceAccount", "name": "robot"}],
                }
            )
        causes = {c["field"] for c in json.loads(bad_subject.value.body)["details"]["causes"]}
        assert causes == {"roleRef.kind", "subjects[0].namespace"}


def test_the_service_account_helper_refuses_malformed_rules(kube: KubeEmulator) -> None:
    with pytest.raises(ValueError, match=r"rules\[0\] must be a PolicyRule mapping with verbs"):
        kube.service_account("bad", rules=[{"resources": ["pods"]}])
    with pytest.raises(APIError):
        kube.service_account("lost", namespace="no-such-namespace")


# --- impersonation --------------------------------------------------------------------------


def test_impersonation_needs_the_impersonate_verb(
    kube: KubeEmulator, ns: Callable[[], str]
) -> None:
    home = ns()
    robot = kube.service_account("robot", namespace=home, rules=[READ_PODS])
    with http(kube) as client:
        as_robot = client.get(
            f"{kube.url}/api/v1/namespaces/{home}/secrets",
            headers={"Authorization": f"Bearer {kube.token}", "Impersonate-User": robot.username},
        )
        assert as_robot.status_code == 403
        assert (
            f'User "{robot.username}" cannot list resource "secrets"' in as_robot.json()["message"]
        )
        escalate = client.get(
            f"{kube.url}/api/v1/secrets",
            headers={"Authorization": f"Bearer {robot.token}", "Impersonate-User": "admin"},
        )
    assert escalate.status_code == 403
    assert escalate.json()["message"] == (
        f'users "admin" is forbidden: User "{robot.username}" cannot impersonate resource '
        '"users" in API group "" at the cluster scope'
    )
