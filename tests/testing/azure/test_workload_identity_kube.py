"""Workload identity end to end: a kube emulator service-account token exchanged at Azure AD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import WorkloadIdentityCredential
from azure.identity.aio import WorkloadIdentityCredential as AsyncWorkloadIdentityCredential

from podidentity.testing._jwt import unverified_claims
from podidentity.testing.azure import WORKLOAD_IDENTITY_AUDIENCE, AzureEmulator

VAULT_SCOPE = "https://vault.azure.net/.default"

kube_module = pytest.importorskip("podidentity.testing.kube")


@pytest.fixture
def kube() -> Iterator[Any]:
    with kube_module.KubeEmulator(tls=True) as emulator:
        emulator.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api"}},
            namespace="default",
        )
        yield emulator


def _federate(azure: AzureEmulator, kube: Any) -> Any:
    # Azure AD fetches the API server's OIDC documents over HTTPS: trust the kube CA.
    azure.oidc.trust(kube.ca_bundle)
    identity = azure.world.add_managed_identity("workload")
    azure.world.add_federated_credential(
        identity,
        issuer=kube.service_accounts.issuer,
        subject="system:serviceaccount:default:api",
    )
    return identity


def _projected_token(kube: Any, tmp_path: Path, service_account: str = "api") -> str:
    """Write the token the kubelet would project for ``service_account``; returns its path."""
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(
        kube.service_accounts.issue_token(
            "default", service_account, audiences=[WORKLOAD_IDENTITY_AUDIENCE]
        )
    )
    return str(token_file)


def test_service_account_token_from_the_kube_emulator(
    azure: AzureEmulator, kube: Any, tmp_path: Path
) -> None:
    identity = _federate(azure, kube)
    token_file = _projected_token(kube, tmp_path)
    with azure.patched_environ():
        token = WorkloadIdentityCredential(
            tenant_id=azure.tenant_id,
            client_id=identity.client_id,
            token_file_path=token_file,
        ).get_token(VAULT_SCOPE)
    assert unverified_claims(token.token)["oid"] == identity.principal_id


async def test_service_account_token_from_the_kube_emulator_aio(
    azure: AzureEmulator, kube: Any, tmp_path: Path
) -> None:
    identity = _federate(azure, kube)
    token_file = _projected_token(kube, tmp_path)
    with azure.patched_environ():
        async with AsyncWorkloadIdentityCredential(
            tenant_id=azure.tenant_id,
            client_id=identity.client_id,
            token_file_path=token_file,
            connection_verify=str(azure.ca_bundle),
        ) as credential:
            token = await credential.get_token(VAULT_SCOPE)
    assert unverified_claims(token.token)["oid"] == identity.principal_id


def test_another_service_account_is_refused(
    azure: AzureEmulator, kube: Any, tmp_path: Path
) -> None:
    identity = _federate(azure, kube)
    kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "intruder"}},
        namespace="default",
    )
    token_file = _projected_token(kube, tmp_path, "intruder")
    with azure.patched_environ(), pytest.raises(ClientAuthenticationError, match="AADSTS700213"):
        WorkloadIdentityCredential(
            tenant_id=azure.tenant_id,
            client_id=identity.client_id,
            token_file_path=token_file,
        ).get_token(VAULT_SCOPE)
