"""Fixtures for ``podidentity.kube``: an emulator and our JSON client over ``kubernetes.aio``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from podidentity.kube import KubeClient, load_api_client
from podidentity.testing.kube import KubeEmulator


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """A plain-HTTP emulator without cluster plug-ins; bookmarks every half second."""
    with KubeEmulator(plugins=False, bookmark_interval=0.5) as emulator:
        yield emulator


@pytest.fixture
async def client(kube: KubeEmulator) -> AsyncIterator[KubeClient]:
    """A :class:`KubeClient` on an official ``kubernetes.aio`` ApiClient for ``kube``."""
    api = await load_api_client(kube.kubeconfig_path)
    async with api:
        yield KubeClient(api)


async def eventually(check: Callable[[], bool], *, within: float = 20.0) -> None:
    """Wait (yielding to the loop) until ``check()`` holds; fail after ``within`` seconds.

    The bound only turns a hang into a failure: nothing is asserted about how long it took.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.01)
