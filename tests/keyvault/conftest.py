"""One emulated Azure per module; each test gets a fresh vault, readable by a VM's identity.

The code under test runs with real credentials: ``ManagedIdentityCredential`` against the
emulated IMDS of the VM (``AZURE_POD_IDENTITY_AUTHORITY_HOST``), real ``SecretClient``s over
HTTPS to ``<vault>.vault.azure.net`` through the emulator's routing proxy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import attrs
import pytest

from podidentity.keyvault import FetchSettings
from podidentity.testing.azure import AzureEmulator, ManualClock
from podidentity.testing.azure._world import ComputeResource, ManagedIdentity

_names = itertools.count()


@attrs.define
class VaultWorld:
    azure: AzureEmulator
    identity: ManagedIdentity
    vm: ComputeResource
    vault: str
    clock: ManualClock

    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.azure.keyvault

    def requests(self) -> list[str]:
        """``METHOD path`` of every request the vault served, challenges included."""
        return [f"{r.method} {r.path}" for r in self.service.requests(self.vault).records]

    def authorised_requests(self) -> list[str]:
        return [
            f"{r.method} {r.path}"
            for r in self.service.requests(self.vault).records
            if r.status != 401
        ]

    def set(self, name: str, value: str, **kwargs: object) -> str:
        # Key Vault's times are whole seconds and a listing tells versions apart by them: let a
        # second pass between writes, as it does between real rotations.
        self.clock.advance(1)
        return self.service.set_secret(self.vault, name, value, **kwargs)  # type: ignore[arg-type]

    def tick(self) -> None:
        self.clock.advance(1)


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def azure(clock: ManualClock) -> Iterator[AzureEmulator]:
    with AzureEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def node(azure: AzureEmulator) -> tuple[ManagedIdentity, ComputeResource]:
    identity = azure.world.add_managed_identity("app-identity")
    vm = azure.world.add_vm("node-0", identities=[identity])
    return identity, vm


@pytest.fixture
def world(
    azure: AzureEmulator, node: tuple[ManagedIdentity, ComputeResource], clock: ManualClock
) -> Iterator[VaultWorld]:
    identity, vm = node
    vault = f"kv-{next(_names)}"
    azure.keyvault.create_vault(vault)
    azure.keyvault.grant(
        vault, identity.principal_id, secrets=("get", "list"), keys=("get", "list")
    )
    with azure.patched_environ(vm=vm):
        yield VaultWorld(azure, identity, vm, vault, clock)


@pytest.fixture
def full_pages(world: VaultWorld) -> Iterator[None]:
    """Every list page full (25 entries), for tests that count requests per 25 secrets.

    By default the emulator pages like a real vault, the first page empty and the others short;
    tests about that keep the default.
    """
    service = world.service
    before = service.short_pages
    service.short_pages = False
    try:
        yield
    finally:
        service.short_pages = before


@pytest.fixture
def fast() -> FetchSettings:
    """Retries without waiting long: error paths stay quick."""
    return FetchSettings(retry_total=2, retry_backoff_factor=0.01, retry_backoff_max=0.05)
