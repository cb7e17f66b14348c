"""podidentity.keyvault.aio end to end: aio SecretClient and the aio ManagedIdentityCredential
against the emulated IMDS; the same core as the sync tests, so fewer cases here."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity.aio import ManagedIdentityCredential

from podidentity.errors import AzureNotFoundError, KeyVaultFetchError
from podidentity.keyvault import DirectorySink, FetchSettings, PollResult, VaultObject, aio
from tests.keyvault.chains import three_level_chain
from tests.keyvault.conftest import VaultWorld


@pytest.fixture
def settings(world: VaultWorld) -> FetchSettings:
    # aiohttp reads its CA store once, at import: trust the emulator's CA explicitly.
    return FetchSettings(
        client_kwargs={"connection_verify": str(world.azure.ca_bundle)},
        retry_total=2,
        retry_backoff_factor=0.01,
    )


async def test_get_secret(world: VaultWorld, settings: FetchSettings) -> None:
    world.set("a", "async-value")
    assert await aio.get_secret(world.vault, "a", settings=settings) == "async-value"
    with pytest.raises(AzureNotFoundError, match=r"secret 'nope' in vault '.*': 404"):
        await aio.get_secret(world.vault, "nope", settings=settings)


async def test_get_secret_with_a_callers_credential_by_resource_id(
    world: VaultWorld, settings: FetchSettings
) -> None:
    world.set("a", "v")
    async with ManagedIdentityCredential(
        identity_config={"resource_id": world.identity.resource_id}
    ) as credential:
        assert (
            await aio.get_secret(world.vault, "a", credential=credential, settings=settings) == "v"
        )
    query = world.azure.imds(vm=world.vm).log.records[-1].query
    assert "resource_id" in query


async def test_fetch_concurrently_with_partial_results(
    world: VaultWorld, settings: FetchSettings
) -> None:
    for index in range(40):
        world.set(f"s{index}", f"value-{index}")
    issued, _expected = three_level_chain()
    world.service.create_certificate(world.vault, "tls", format="pfx", certificate=issued)
    objects = [VaultObject(vault=world.vault, name=f"s{i}") for i in range(40)]
    objects += [
        VaultObject(vault=world.vault, name="tls", type="certificate"),
        VaultObject(vault=world.vault, name="missing"),
    ]
    with pytest.raises(KeyVaultFetchError) as info:
        await aio.fetch(objects, settings=settings)
    result = info.value.result
    assert [result.text(f"s{i}") for i in range(40)] == [f"value-{i}" for i in range(40)]
    assert result["tls"].data.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [f.object.name for f in info.value.failures] == ["missing"]


@pytest.mark.usefixtures("full_pages")
async def test_watcher_polls_by_listing(
    world: VaultWorld, settings: FetchSettings, tmp_path: Path
) -> None:
    for index in range(30):
        world.set(f"s{index}", f"value-{index}")
    changes: list[PollResult] = []

    async def on_change(poll: PollResult) -> None:
        changes.append(poll)

    objects = [VaultObject(vault=world.vault, name=f"s{i}") for i in range(30)]
    async with aio.Watcher(
        objects, [DirectorySink(tmp_path)], settings=settings, on_change=on_change
    ) as watcher:
        await watcher.poll()
        world.set("s7", "rotated")
        log = world.service.requests(world.vault)
        before = len(log.records)
        poll = await watcher.poll()
        new = [(r.method, r.path) for r in log.records[before:]]
    assert sorted(new) == [("GET", "/secrets"), ("GET", "/secrets"), ("GET", "/secrets/s7/")]
    assert poll.changed == ("s7",)
    assert (tmp_path / "s7").read_text() == "rotated"
    assert [c.changed for c in changes][-1] == ("s7",)


async def test_watcher_follows_short_pages(
    world: VaultWorld, settings: FetchSettings, tmp_path: Path
) -> None:
    assert world.service.short_pages  # the default, as a real vault: first page empty, rest short
    for index in range(30):
        world.set(f"s{index}", f"value-{index}")
    objects = [VaultObject(vault=world.vault, name=f"s{i}") for i in range(30)]
    async with aio.Watcher(objects, [DirectorySink(tmp_path)], settings=settings) as watcher:
        first = await watcher.poll()
        log = world.service.requests(world.vault)
        before = len(log.records)
        quiet = await watcher.poll()
        listed = log.records[before:]
        world.set("s9", "rotated")  # "s9" sorts last: on the last page
        before = len(log.records)
        poll = await watcher.poll()
        new = [(r.method, r.path) for r in log.records[before:]]
    assert len(first.fetched) == 30
    assert quiet.fetched == ()
    # Only list pages, each answered: more than one per 25 secrets, the pages were short.
    assert [(r.method, r.path, r.status) for r in listed] == [("GET", "/secrets", 200)] * len(
        listed
    )
    assert len(listed) > 2
    assert new == [("GET", "/secrets")] * len(listed) + [("GET", "/secrets/s9/")]
    assert poll.changed == ("s9",)
    assert (tmp_path / "s9").read_text() == "rotated"
