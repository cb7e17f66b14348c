"""A sandbox with one node pool and a token proxy per node, shared by the NMI tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from podidentity.nmi import TokenProxySettings
from podidentity.testing import Sandbox
from tests.nmi.inprocess import MakeProxy, proxies
from tests.nmi.world import NmiWorld


@pytest.fixture(scope="module")
def world() -> Iterator[NmiWorld]:
    with Sandbox() as sandbox:
        sandbox.add_node_pool("agents", count=2)
        sandbox.start_token_proxies(TokenProxySettings(pending_timeout=5.0))
        with sandbox.kube_client() as api:
            yield NmiWorld(sandbox, api)


@pytest.fixture
def nodes(world: NmiWorld) -> list[str]:
    return sorted(world.sandbox.nodes)


@pytest.fixture
async def make_proxy(world: NmiWorld) -> AsyncIterator[MakeProxy]:
    async for make in proxies(world):
        yield make
