"""Fixtures for the Kubernetes emulator's tests: a fresh emulator and official clients."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes
import pytest

from podidentity.testing.kube import KubeEmulator


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """A plain-HTTP emulator without the cluster/token plug-ins (their tests cover them)."""
    with KubeEmulator(plugins=False, bookmark_interval=0.5) as emulator:
        yield emulator


@pytest.fixture
def api_client(kube: KubeEmulator) -> Iterator[kubernetes.client.ApiClient]:
    """The official sync client, configured from the emulator's kubeconfig."""
    client = kubernetes.config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    yield client
    client.close()


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    """``CoreV1Api`` over the emulator."""
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    """``CustomObjectsApi`` over the emulator."""
    return kubernetes.client.CustomObjectsApi(api_client)
