"""Reading AKS's ``azure.json`` and the credential it describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential

from podidentity.azure.cloudconfig import CloudConfig, read_cloud_config
from podidentity.errors import ConfigError


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "azure.json"
    path.write_text(json.dumps(document))
    return path


async def test_a_service_principal_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "cloud": "AzureChinaCloud",
            "tenantId": "tenant",
            "subscriptionId": "sub",
            "resourceGroup": "MC_rg",
            "aadClientId": "client",
            "aadClientSecret": "s3cret-value",
            "securityGroupName": "ignored",
        },
    )
    config = read_cloud_config(path)
    assert config == CloudConfig(
        cloud="AzureChinaCloud",
        tenant_id="tenant",
        subscription_id="sub",
        resource_group="MC_rg",
        client_id="client",
        client_secret="s3cret-value",
    )
    assert not config.uses_managed_identity
    assert "s3cret-value" not in repr(config)
    async with config.credential() as credential:
        assert isinstance(credential, ClientSecretCredential)


@pytest.mark.parametrize(
    "document",
    [
        {"useManagedIdentityExtension": True, "userAssignedIdentityID": "kubelet"},
        {"aadClientId": "msi", "aadClientSecret": "msi", "userAssignedIdentityID": "kubelet"},
    ],
)
async def test_managed_identity_configs(tmp_path: Path, document: dict[str, object]) -> None:
    config = read_cloud_config(write(tmp_path, document))
    assert config.uses_managed_identity
    assert config.user_assigned_identity_id == "kubelet"
    assert config.cloud == "AzurePublicCloud"
    async with config.credential() as credential:
        assert isinstance(credential, ManagedIdentityCredential)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"tenantId": 7}', "tenantId must be a string"),
        ('{"useManagedIdentityExtension": "yes"}', "must be a boolean"),
    ],
)
def test_unreadable_configs_name_the_file_and_field(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "azure.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        read_cloud_config(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_and_an_incomplete_service_principal(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the cloud config"):
        read_cloud_config(tmp_path / "absent.json")
    config = read_cloud_config(write(tmp_path, {"tenantId": "t", "aadClientSecret": "x"}))
    with pytest.raises(ConfigError, match="has no aadClientId"):
        config.credential()
