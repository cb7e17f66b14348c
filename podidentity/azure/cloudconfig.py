"""The cluster's Azure configuration file (``/etc/kubernetes/azure.json`` on AKS nodes).

AKS and aks-engine write it for the cloud provider; aad-pod-identity's controller read its ARM
credential from it. :func:`read_cloud_config` parses it into a :class:`CloudConfig`, and
:meth:`CloudConfig.credential` makes the azure-identity credential it describes: a service
principal (``aadClientId`` / ``aadClientSecret``), or the node's managed identity
(``useManagedIdentityExtension``, optionally ``userAssignedIdentityID``; AKS clusters with a
managed identity write ``"msi"`` for the client ID and secret).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from podidentity.errors import ConfigError

__all__ = ["CloudConfig", "read_cloud_config"]

_MSI = "msi"


@attrs.frozen(kw_only=True)
class CloudConfig:
    """What podidentity uses of ``azure.json``.

    Attributes:
        cloud: the Azure cloud's name (``AzurePublicCloud`` when absent).
        tenant_id: ``tenantId``.
        subscription_id: ``subscriptionId``.
        resource_group: ``resourceGroup`` (the cluster's node resource group on AKS).
        client_id: ``aadClientId`` (``"msi"`` on AKS clusters with a managed identity).
        client_secret: ``aadClientSecret`` (never shown by ``repr``).
        use_managed_identity: ``useManagedIdentityExtension``.
        user_assigned_identity_id: ``userAssignedIdentityID``, the client ID of the managed
            identity to use (empty: the system-assigned one).
    """

    cloud: str = "AzurePublicCloud"
    tenant_id: str = ""
    subscription_id: str = ""
    resource_group: str = ""
    client_id: str = ""
    client_secret: str = attrs.field(default="", repr=lambda value: "****" if value else "''")
    use_managed_identity: bool = False
    user_assigned_identity_id: str = ""

    @property
    def uses_managed_identity(self) -> bool:
        """Whether the credential is a managed identity rather than a service principal."""
        return self.use_managed_identity or (
            self.client_id.lower() == _MSI and self.client_secret.lower() == _MSI
        )

    def check(self) -> None:
        """Fail unless the file describes a usable credential.

        Raises:
            ConfigError: a service principal without ``tenantId``, ``aadClientId`` or
                ``aadClientSecret``.
        """
        if self.uses_managed_identity:
            return
        missing = [
            key
            for key, value in (
                ("tenantId", self.tenant_id),
                ("aadClientId", self.client_id),
                ("aadClientSecret", self.client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"the cloud config has no {', '.join(missing)}: a service principal needs "
                "tenantId, aadClientId and aadClientSecret (or set useManagedIdentityExtension)"
            )

    def credential(self, *, authority: str | None = None, **options: Any) -> Any:
        """The azure-identity *aio* credential the file describes (close it when done).

        Args:
            authority: the Azure AD authority host for a service principal
                (``AZURE_AUTHORITY_HOST`` or the public cloud's when ``None``).
            options: more keyword arguments for the credential (transport options).

        Raises:
            ConfigError: a service principal without ``tenantId``, ``aadClientId`` or
                ``aadClientSecret``.
        """
        from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential

        self.check()
        if self.uses_managed_identity:
            return ManagedIdentityCredential(
                client_id=self.user_assigned_identity_id or None, **options
            )
        if authority is not None:
            options["authority"] = authority
        return ClientSecretCredential(self.tenant_id, self.client_id, self.client_secret, **options)


def read_cloud_config(path: str | os.PathLike[str]) -> CloudConfig:
    """Parse an ``azure.json``.

    Raises:
        ConfigError: the file cannot be read, is not a JSON object, or a field has the wrong
            type; the message names the file and the field.
    """
    where = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read the cloud config {where}: {err.strerror}") from err
    except ValueError as err:
        raise ConfigError(f"the cloud config {where} is not valid JSON: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError(f"the cloud config {where} must be a JSON object")

    def text(key: str, default: str = "") -> str:
        value = document.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(f"the cloud config {where}: {key} must be a string")
        return value.strip()

    flag = document.get("useManagedIdentityExtension", False)
    if not isinstance(flag, bool):
        raise ConfigError(
            f"the cloud config {where}: useManagedIdentityExtension must be a boolean"
        )
    return CloudConfig(
        cloud=text("cloud") or "AzurePublicCloud",
        tenant_id=text("tenantId"),
        subscription_id=text("subscriptionId"),
        resource_group=text("resourceGroup"),
        client_id=text("aadClientId"),
        client_secret=text("aadClientSecret"),
        use_managed_identity=flag,
        user_assigned_identity_id=text("userAssignedIdentityID"),
    )
