"""The official asyncio client, configured from an emulator's kubeconfig."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from podidentity.testing.kube import KubeEmulator


@contextlib.asynccontextmanager
async def aio_api_client(kube: KubeEmulator) -> AsyncIterator[Any]:
    """A ``kubernetes.aio`` ``ApiClient`` talking to ``kube``, closed on exit."""
    # Imported here, as the tests did, so collecting them does not need the aio client.
    from kubernetes.aio import client as aclient
    from kubernetes.aio import config as aconfig

    configuration = aclient.Configuration()
    await aconfig.load_kube_config(
        config_file=str(kube.kubeconfig_path), client_configuration=configuration
    )
    async with aclient.ApiClient(configuration) as api:
        yield api
