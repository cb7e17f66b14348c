"""The sandbox's default world: what ``podidentity sandbox`` and ``podidentity demo`` start with.

:func:`populate_default_world` fills a started :class:`~podidentity.testing.Sandbox` with a
small AKS cluster and its subscription, always the same names (ids are generated):

- two nodes: ``vm-node-0`` on a plain VM, and the one instance of node pool ``nodepool1``'s
  scale set;
- vault ``sandbox-vault`` with one secret, ``db-password``;
- two user-assigned identities, ``app-identity`` (may read the vault's secrets) and
  ``worker-identity`` (may not), in the resource group the controller may assign from;
- one federated identity, ``workload-identity``, trusted for pods running as service account
  ``default/workload`` (and allowed to read the vault);
- the reconciler (controller) running, and one token proxy per node.

The Kubernetes side starts empty but for the nodes: creating an ``AzureIdentity``, a binding and
a labelled pod is the user's first step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from podidentity.testing.azure import FederatedCredential, ManagedIdentity
from podidentity.testing.sandbox import NodePool, Sandbox, SandboxNode

if TYPE_CHECKING:
    from podidentity.nmi import TokenProxySettings
    from podidentity.reconciler import Controller, ControllerSettings

__all__ = [
    "DEFAULT_SECRET_VALUE",
    "DefaultWorld",
    "populate_default_world",
]

VM_NODE = "vm-node-0"
NODE_POOL = "nodepool1"
VAULT_NAME = "sandbox-vault"
SECRET_NAME = "db-password"  # noqa: S105 - a name, not a value
#: The value of the default secret. A sandbox is not a place for real secrets: tests compare a
#: read against this, and the sandbox itself never prints it.
DEFAULT_SECRET_VALUE = "sandbox-only-not-a-real-password"  # noqa: S105 - emulated vault only
APP_IDENTITY = "app-identity"
WORKER_IDENTITY = "worker-identity"
FEDERATED_IDENTITY = "workload-identity"
FEDERATED_NAMESPACE = "default"
FEDERATED_SERVICE_ACCOUNT = "workload"


@attrs.frozen
class DefaultWorld:
    """What :func:`populate_default_world` made.

    Attributes:
        vm_node: the node backed by a plain VM.
        node_pool: the node pool (one scale set, one instance).
        identities: the two user-assigned identities, ``app-identity`` first.
        federated_identity: the identity pods of :attr:`federated_subject` may use through
            workload identity federation.
        federated_credential: its federated credential (the cluster's issuer and subject).
        vault_name: the vault's name.
        vault_url: the vault's URL (``https://sandbox-vault.vault.azure.net/``).
        secret_names: the secrets in the vault.
        vault_readers: the identities allowed to get and list the vault's secrets.
        controller: the running reconciler.
    """

    vm_node: SandboxNode
    node_pool: NodePool
    identities: tuple[ManagedIdentity, ...]
    federated_identity: ManagedIdentity
    federated_credential: FederatedCredential
    vault_name: str
    vault_url: str
    secret_names: tuple[str, ...]
    vault_readers: tuple[ManagedIdentity, ...]
    controller: Controller

    @property
    def nodes(self) -> tuple[SandboxNode, ...]:
        """Every node: the VM node, then the pool's."""
        return (self.vm_node, *self.node_pool.nodes)

    @property
    def federated_subject(self) -> str:
        """``system:serviceaccount:<namespace>:<name>`` the federated identity trusts."""
        return self.federated_credential.subject


def populate_default_world(
    sandbox: Sandbox,
    *,
    controller_settings: ControllerSettings | None = None,
    token_proxy_settings: TokenProxySettings | None = None,
) -> DefaultWorld:
    """Create the default world (see the module doc) in a started, still empty sandbox.

    Args:
        sandbox: a started sandbox with no nodes yet.
        controller_settings: the reconciler's settings (its defaults when ``None``).
        token_proxy_settings: the token proxies' settings (their defaults when ``None``).

    Returns:
        What was made, including the running controller.

    Raises:
        ValueError: the sandbox already has nodes (the default world would not be the world).
    """
    if sandbox.nodes:
        raise ValueError(
            f"populate_default_world needs an empty sandbox; it has nodes {sorted(sandbox.nodes)}"
        )
    world = sandbox.azure.world
    vm_node = sandbox.add_vm_node(VM_NODE)
    pool = sandbox.add_node_pool(NODE_POOL, count=1)

    # The controller may only assign identities from this group (Managed Identity Operator on
    # sandbox.identity_resource_group_id): create them there.
    group = sandbox.identity_resource_group_id.rsplit("/", 1)[-1]
    app = world.add_managed_identity(APP_IDENTITY, resource_group=group)
    worker = world.add_managed_identity(WORKER_IDENTITY, resource_group=group)
    federated = world.add_managed_identity(FEDERATED_IDENTITY, resource_group=group)
    credential = sandbox.federate(
        federated, namespace=FEDERATED_NAMESPACE, service_account=FEDERATED_SERVICE_ACCOUNT
    )

    vault_url = sandbox.azure.keyvault.create_vault(VAULT_NAME)
    sandbox.azure.keyvault.set_secret(VAULT_NAME, SECRET_NAME, DEFAULT_SECRET_VALUE)
    readers = (app, federated)
    for reader in readers:
        sandbox.azure.keyvault.grant(VAULT_NAME, reader.principal_id, secrets=["get", "list"])

    controller = sandbox.start_controller(controller_settings)
    sandbox.start_token_proxies(token_proxy_settings)
    return DefaultWorld(
        vm_node=vm_node,
        node_pool=pool,
        identities=(app, worker),
        federated_identity=federated,
        federated_credential=credential,
        vault_name=VAULT_NAME,
        vault_url=vault_url,
        secret_names=(SECRET_NAME,),
        vault_readers=readers,
        controller=controller,
    )
