"""HTTPS with bearer tokens, in-cluster config, the aio client, and faults on demand."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from podidentity.testing.kube import KubeEmulator, UserInfo
from tests.testing.kube.aio_client import aio_api_client
from tests.testing.kube.kube_manifests import pod


@pytest.fixture(scope="module")
def secure() -> Iterator[KubeEmulator]:
    with KubeEmulator(tls=True, plugins=False) as emulator:
        yield emulator


def test_kubeconfig_over_https(secure: KubeEmulator) -> None:
    client = kubernetes.config.new_client_from_config(config_file=str(secure.kubeconfig_path))
    names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
    assert "default" in names
    client.close()


def test_missing_or_wrong_token_is_401(secure: KubeEmulator) -> None:
    assert secure.ca_bundle is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=str(secure.ca_bundle))) as http:
        response = http.get(f"{secure.url}/api/v1/namespaces")
        assert response.status_code == 401
        assert response.json()["reason"] == "Unauthorized"
        wrong = http.get(
            f"{secure.url}/api/v1/namespaces", headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401


def test_authenticator_plug_in_names_the_user(secure: KubeEmulator) -> None:
    seen: list[str] = []

    def hook(request: object) -> None:
        seen.append(request.user.username)  # type: ignore[attr-defined]

    secure.apiserver.set_authenticator(
        lambda token: UserInfo("system:serviceaccount:default:app") if token == "sa" else None
    )
    secure.apiserver.add_admission("configmaps", hook)
    assert secure.ca_bundle is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=str(secure.ca_bundle))) as http:

        def create() -> httpx.Response:
            return http.post(
                f"{secure.url}/api/v1/namespaces/default/configmaps",
                headers={"Authorization": "Bearer sa"},
                json={"metadata": {"name": "by-sa"}},
            )

        # Authenticated is not authorized: RBAC has granted this user nothing yet.
        denied = create()
        assert denied.status_code == 403
        assert seen == []
        secure.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "app-edit", "namespace": "default"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "edit",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "default"}],
            }
        )
        response = create()
    assert response.status_code == 201
    assert seen == ["system:serviceaccount:default:app"]


def test_in_cluster_config(secure: KubeEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    files = secure.in_cluster()
    for key, value in files.env.items():
        monkeypatch.setenv(key, value)
    configuration = kubernetes.client.Configuration()
    loader = kubernetes.config.incluster_config.InClusterConfigLoader(
        token_filename=str(files.token_path), cert_filename=str(files.ca_path)
    )
    loader.load_and_set(configuration)
    with kubernetes.client.ApiClient(configuration) as client:
        assert (
            kubernetes.client.CoreV1Api(client).read_namespace("default").metadata.name == "default"
        )


async def test_aio_client_over_https(secure: KubeEmulator) -> None:
    from kubernetes.aio import client as aclient

    async with aio_api_client(secure) as api:
        core = aclient.CoreV1Api(api)
        created = await core.create_namespaced_config_map("default", {"metadata": {"name": "aio"}})
        assert created.metadata.name == "aio"
        await core.patch_namespaced_config_map("aio", "default", {"data": {"k": "v"}})
        assert (await core.read_namespaced_config_map("aio", "default")).data == {"k": "v"}
        await core.delete_namespaced_config_map("aio", "default")


async def test_async_context_manager() -> None:
    async with KubeEmulator(plugins=False) as kube:
        assert kube.get("namespaces", "default")["status"]["phase"] == "Active"


def test_fail_next_with_retry_after(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    kube.fail_next("pods", "list", count=2, status=429)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_pod("default")
        assert caught.value.status == 429
        assert json.loads(caught.value.body)["reason"] == "TooManyRequests"
    assert core.list_namespaced_pod("default").items == []
    # With Retry-After, urllib3 under the sync client waits and retries by itself.
    kube.requests.clear()
    kube.fail_next("pods", "list", count=2, status=429, retry_after=0)
    assert core.list_namespaced_pod("default").items == []
    assert [r.status for r in kube.requests.find(method="GET", path="/pods$")] == [429, 429, 200]
    core.create_namespaced_pod("default", pod("web"))
    kube.fail_next("pods", "get", status=500)
    with pytest.raises(ApiException) as failed:
        core.read_namespaced_pod("web", "default")
    assert failed.value.status == 500
    kube.fail_next("configmaps", "create", status=409)
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    assert conflict.value.status == 409
    assert kube.requests.find(method="GET", path="/pods$")


def test_http_controls(kube: KubeEmulator, core: kubernetes.client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("web"))
    with httpx.Client() as http:
        assert http.post(f"{kube.url}/_emulator/expire-watch-window").status_code == 200
        assert http.post(f"{kube.url}/_emulator/drop-watches").json() == {"dropped": 0}
    raw = core.list_namespaced_pod(
        "default", watch=True, resource_version=rv, _preload_content=False, timeout_seconds=1
    )
    assert '"code":410' in raw.data.decode()


def test_fail_next_tells_list_from_watch(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_pod("default", pod("web"))
    kube.fail_next("pods", "list", status=500)
    # The watch is not a list: it streams while the list rule waits for its request.
    watch = kubernetes.watch.Watch()
    names = []
    for event in watch.stream(core.list_namespaced_pod, "default", timeout_seconds=30):
        names.append(event["object"].metadata.name)
        watch.stop()  # the one expected event is in; the timeout only bounds a failure
    assert names == ["web"]
    with pytest.raises(ApiException) as failed_list:
        core.list_namespaced_pod("default")
    assert failed_list.value.status == 500
    kube.fail_next("pods", "watch", status=429)
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["web"]
    with pytest.raises(ApiException) as failed_watch:
        core.list_namespaced_pod("default", watch=True, timeout_seconds=1)
    assert failed_watch.value.status == 429


@pytest.mark.parametrize(
    ("query", "verb"),
    [
        ("", "list"),
        ("limit=5&watch=false", "list"),
        ("watch=0", "list"),
        ("watch=FALSE&limit=1", "list"),
        ("watch=true", "watch"),
        ("watch=True&resourceVersion=5", "watch"),
        ("allowWatchBookmarks=true&watch=1", "watch"),
        ("watch", "watch"),
        ("watch=", "watch"),
    ],
)
def test_list_and_watch_rules_read_the_watch_parameter_like_the_server(
    kube: KubeEmulator, query: str, verb: str
) -> None:
    rules = {v: kube.fail_next("pods", v, count=0) for v in ("list", "watch")}
    _, failing = kube.faults.take("GET", "/api/v1/namespaces/default/pods", "", query)
    assert failing is rules[verb]


def test_fail_next_on_namespaces_leaves_their_contents_alone(
    kube: KubeEmulator, core: kubernetes.client.CoreV1Api
) -> None:
    kube.fail_next("namespaces", status=503, count=0)
    kube.fail_next("pods", "get", status=500, count=0)
    assert core.list_namespaced_pod("default").items == []
    assert core.list_namespaced_config_map("default").items == []
    with pytest.raises(ApiException) as failed:
        core.read_namespace("default")
    assert failed.value.status == 503
    with pytest.raises(ApiException) as status_failed:
        core.read_namespace_status("default")
    assert status_failed.value.status == 503
    with pytest.raises(ValueError, match="unknown verb"):
        kube.fail_next("pods", "explode")
