"""Which credential a pod uses: a pure decision from its environment (no I/O).

The sync and aio modules turn the decision into azure-identity's credential classes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from podidentity.errors import ConfigError

__all__ = ["CredentialChoice", "choose_credential"]

_WORKLOAD_VARS = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")


@attrs.frozen
class CredentialChoice:
    """Which credential a pod should use: ``workload`` or ``managed``, and its arguments."""

    kind: Literal["workload", "managed"]
    kwargs: Mapping[str, Any]


def choose_credential(
    *,
    client_id: str | None = None,
    resource_id: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CredentialChoice:
    """Pick the credential for a pod from its environment.

    Workload identity when ``AZURE_FEDERATED_TOKEN_FILE`` is set (with ``AZURE_CLIENT_ID``
    and ``AZURE_TENANT_ID``, as the webhook injects them); otherwise managed identity through
    IMDS or the node's token proxy, for ``client_id`` or ``resource_id`` when given.

    Raises:
        ConfigError: both ``client_id`` and ``resource_id``; a partial workload environment.
    """
    env = os.environ if environ is None else environ
    if client_id and resource_id:
        raise ConfigError("give a client ID or a resource ID for the managed identity, not both")
    if env.get("AZURE_FEDERATED_TOKEN_FILE"):
        if resource_id:
            raise ConfigError(
                "a resource ID selects a managed identity; with workload identity "
                "(AZURE_FEDERATED_TOKEN_FILE is set) give the client ID"
            )
        missing = [
            v
            for v in _WORKLOAD_VARS
            if not env.get(v) and not (v == "AZURE_CLIENT_ID" and client_id)
        ]
        if missing:
            raise ConfigError(
                f"AZURE_FEDERATED_TOKEN_FILE is set but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not: set them (the workload identity "
                "webhook does) or unset AZURE_FEDERATED_TOKEN_FILE to use managed identity"
            )
        kwargs: dict[str, Any] = {"client_id": client_id} if client_id else {}
        return CredentialChoice("workload", kwargs)
    if client_id:
        return CredentialChoice("managed", {"client_id": client_id})
    if resource_id:
        return CredentialChoice("managed", {"identity_config": {"resource_id": resource_id}})
    return CredentialChoice("managed", {})
