"""Where the proxy gets a token for an identity, and the cache key that keeps them apart.

=====================================  =====================================================
identity type                          source
=====================================  =====================================================
0 user-assigned managed identity       the node's IMDS, by the identity's resource ID (what
                                       the reconciler put on the VM), checked against its
                                       client ID
1 service principal, client secret     Azure AD (azure-identity), secret from the Secret
                                       ``spec.clientPassword`` names (key ``clientSecret``,
                                       else its first key, as upstream)
2 service principal, certificate       Azure AD, PKCS#12 in the Secret's ``certificate`` key,
                                       its password in ``password``
3 federated workload identity          a TokenRequest for the calling pod's service account
                                       (audience ``api://AzureADTokenExchange``, bound to the
                                       pod), exchanged at Azure AD
=====================================  =====================================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from podidentity.azure.aad import (
    WORKLOAD_IDENTITY_AUDIENCE,
    certificate_token,
    client_secret_token,
    federated_token,
)
from podidentity.azure.imds import ImdsClient
from podidentity.azure.tokens import AccessToken
from podidentity.errors import AzureAuthenticationError, KubeError
from podidentity.kube import KubeClient
from podidentity.kube.secrets import read_secret_data
from podidentity.kube.serviceaccounts import request_pod_token
from podidentity.models import AzureIdentity, IdentityType
from podidentity.nmi.cache import CacheKey
from podidentity.nmi.callers import PodInfo

__all__ = ["TokenSources", "cache_key", "node_cache_key"]

logger = logging.getLogger(__name__)


def cache_key(identity: AzureIdentity, pod: PodInfo, resource: str) -> CacheKey:
    """The cache key of ``identity``'s token for ``resource`` as ``pod`` would get it.

    Managed identities are keyed by their resource and client IDs (IMDS gives every pod on the
    VM the same token for them); service principals also by the ``AzureIdentity`` and the
    Secret that holds their credential (two objects naming one client with different secrets
    never share a token); federated identities also by the pod's service account (Azure AD
    decides per service account).
    """
    kind = identity.type
    client = identity.client_id.lower()
    if kind is IdentityType.USER_ASSIGNED_MSI:
        part = f"msi|{identity.resource_id.lower()}|{client}"
    elif kind is IdentityType.FEDERATED_WORKLOAD_IDENTITY:
        part = f"federated|{client}|{pod.namespace}|{pod.service_account}"
    else:
        ref = identity.client_password
        secret = f"{ref.namespace}/{ref.name}" if ref else ""
        part = f"sp{kind.value}|{client}|{identity.namespace}/{identity.name}|{secret}"
    return (part, resource, identity.tenant_id.lower())


def node_cache_key(parameter: tuple[str, str] | None, resource: str) -> CacheKey:
    """The cache key of a node identity's token (for exception and controller pods)."""
    named = f"{parameter[0]}={parameter[1].lower()}" if parameter else "default"
    return (f"node|{named}", resource, "")


class TokenSources:
    """Fetches one token from the right upstream; retries and caching are the caller's.

    Args:
        imds: the node's IMDS.
        client: the Kubernetes client (Secrets, TokenRequest).
        credential_options: extra keyword arguments for azure-identity credentials (transport
            settings such as ``connection_verify`` and ``proxies``).
    """

    def __init__(
        self,
        imds: ImdsClient,
        client: KubeClient,
        *,
        credential_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.imds = imds
        self.client = client
        self.credential_options = dict(credential_options or {})

    def __repr__(self) -> str:
        return f"TokenSources(imds={self.imds!r})"

    async def node_token(self, parameter: tuple[str, str] | None, resource: str) -> AccessToken:
        """A token of one of the node's own identities, straight from IMDS."""
        return await self.imds.get_token(resource, parameter=parameter)

    async def token(self, identity: AzureIdentity, pod: PodInfo, resource: str) -> AccessToken:
        """A token of ``identity`` for ``resource``, as ``pod`` is entitled to.

        Raises:
            podidentity.errors.AzureError: the upstream refused or failed.
            podidentity.errors.KubeError: a Secret or a TokenRequest failed.
        """
        kind = identity.type
        if kind is IdentityType.USER_ASSIGNED_MSI:
            return await self._managed(identity, resource)
        if kind is IdentityType.FEDERATED_WORKLOAD_IDENTITY:
            return await self._federated(identity, pod, resource)
        return await self._service_principal(identity, resource)

    async def _managed(self, identity: AzureIdentity, resource: str) -> AccessToken:
        # By resource ID: that is what the reconciler put on the VM for this pod. A client ID
        # that does not belong to it would otherwise select another identity on the VM.
        parameter = (
            ("msi_res_id", identity.resource_id)
            if identity.resource_id
            else ("client_id", identity.client_id)
        )
        token = await self.imds.get_token(resource, parameter=parameter)
        if (
            identity.client_id
            and token.client_id
            and token.client_id.lower() != identity.client_id.lower()
        ):
            raise AzureAuthenticationError(
                f"AzureIdentity {identity.namespace}/{identity.name}: resourceID "
                f"{identity.resource_id} belongs to client {token.client_id}, not to clientID "
                f"{identity.client_id}; fix the AzureIdentity",
                code="identity_mismatch",
            )
        return token

    async def _secret(self, identity: AzureIdentity) -> dict[str, bytes]:
        ref = identity.client_password
        if ref is None or not ref.name:
            raise AzureAuthenticationError(
                f"AzureIdentity {identity.namespace}/{identity.name} names no Secret "
                "(spec.clientPassword)",
                code="no_credential",
            )
        namespace = ref.namespace or identity.namespace
        try:
            return await read_secret_data(self.client, namespace, ref.name)
        except KubeError as err:
            raise type(err)(
                f"AzureIdentity {identity.namespace}/{identity.name}: {err}",
                code=err.code,
                reason=err.reason,
            ) from None

    async def _service_principal(self, identity: AzureIdentity, resource: str) -> AccessToken:
        data = await self._secret(identity)
        common: dict[str, Any] = {
            "tenant_id": identity.tenant_id,
            "client_id": identity.client_id,
            "resource": resource,
            "authority": identity.authority,
            "options": self.credential_options,
        }
        if identity.type is IdentityType.SERVICE_PRINCIPAL_CERTIFICATE:
            certificate = data.get("certificate")
            if not certificate:
                raise AzureAuthenticationError(
                    f"AzureIdentity {identity.namespace}/{identity.name}: its Secret has no "
                    "'certificate' key",
                    code="no_credential",
                )
            return await certificate_token(
                certificate=certificate, password=data.get("password"), **common
            )
        secret = data.get("clientSecret")
        if secret is None and data:
            secret = data[sorted(data)[0]]
        if not secret:
            raise AzureAuthenticationError(
                f"AzureIdentity {identity.namespace}/{identity.name}: its Secret is empty",
                code="no_credential",
            )
        return await client_secret_token(secret=secret.decode(), **common)

    async def _federated(self, identity: AzureIdentity, pod: PodInfo, resource: str) -> AccessToken:
        assertion = await request_pod_token(
            self.client,
            namespace=pod.namespace,
            service_account=pod.service_account,
            pod_name=pod.name,
            pod_uid=pod.uid,
            audience=WORKLOAD_IDENTITY_AUDIENCE,
        )
        return await federated_token(
            tenant_id=identity.tenant_id,
            client_id=identity.client_id,
            assertion=assertion,
            resource=resource,
            authority=identity.authority,
            options=self.credential_options,
        )
