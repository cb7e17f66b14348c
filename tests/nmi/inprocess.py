"""Token proxies run in the test's own loop, reached through ``httpx.ASGITransport``.

The TCP peer address is what ASGI's ``client`` says, so a test picks the caller's IP the way
the relay does on a real socket. Objects are created before a proxy starts, so its first list
already holds them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from podidentity.kube import load_api_client
from podidentity.nmi import TokenProxy, TokenProxySettings
from podidentity.nmi.view import ClusterView
from tests.nmi.world import VAULT, NmiWorld

TOKEN_PATH = f"/metadata/identity/oauth2/token?api-version=2018-02-01&resource={VAULT}"
METADATA = {"Metadata": "true"}

MakeProxy = Callable[..., Awaitable[TokenProxy]]


def _open_sockets(loop: asyncio.AbstractEventLoop) -> int:
    # The selector event loop's registered file descriptors: one per socket still open (or still
    # closing: a TLS close waits for the peer's reply). Not public API, hence the fallback.
    selector = getattr(loop, "_selector", None)
    return len(selector.get_map()) if selector is not None else 0


async def _until_closed(baseline: int, timeout: float = 5.0) -> None:
    """Let the loop finish closing what the proxies and client opened before the test's loop ends.

    Otherwise a socket still closing when pytest closes the loop is collected, with a
    ResourceWarning, during whichever test runs next.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _open_sockets(loop) > baseline and loop.time() < deadline:
        await asyncio.sleep(0.005)
    for _ in range(3):
        await asyncio.sleep(0)  # the closes' last callbacks (connection_lost) run now


async def proxies(world: NmiWorld) -> AsyncIterator[MakeProxy]:
    baseline = _open_sockets(asyncio.get_running_loop())
    api = await load_api_client(world.sandbox.kube.kubeconfig_path)
    started: list[TokenProxy] = []

    async def make(node: str, **settings: Any) -> TokenProxy:
        proxy = TokenProxy.connect(
            node,
            api=api,
            imds_url=world.sandbox.imds_url(node),
            settings=TokenProxySettings(**{"pending_timeout": 0.5, **settings}),
            credential_options=world.sandbox.azure.client_kwargs(),
        )
        await proxy.start()
        started.append(proxy)
        assert isinstance(proxy.view, ClusterView)
        await asyncio.wait_for(proxy.view.wait_synced(), 30)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            await proxy.stop()
        await api.close()
        await _until_closed(baseline)


def client(proxy: TokenProxy, ip: str) -> httpx.AsyncClient:
    """An HTTP client whose requests reach ``proxy`` from ``ip``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=proxy, client=(ip, 40123)),
        base_url="http://169.254.169.254",
    )


def pod_ip(pod: dict[str, Any]) -> str:
    return str(pod["status"]["podIP"])
