"""The files ``podidentity sandbox`` keeps in its state directory, and reading them back.

``DIR/sandbox.json`` lists every address, the tenant, identities and vaults (never a secret
value, a token or a client secret); ``DIR/kubeconfig`` is the cluster's admin kubeconfig;
``DIR/kubernetes-ca.pem`` and ``DIR/azure-ca.pem`` are the two emulators' CAs, copied so the
directory is self-contained. Files are written whole (temporary file, then rename), so a
reader never sees half of one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the emulators load only when a sandbox runs, not with every command
    from podidentity.testing import DefaultWorld, Sandbox
    from podidentity.testing.azure import ManagedIdentity

__all__ = [
    "AZURE_CA",
    "KUBECONFIG",
    "KUBERNETES_CA",
    "STATE_FILE",
    "StateError",
    "describe",
    "read_state",
    "write_files",
    "write_state",
]

STATE_FILE = "sandbox.json"
KUBECONFIG = "kubeconfig"
KUBERNETES_CA = "kubernetes-ca.pem"
AZURE_CA = "azure-ca.pem"
#: Bumped when a field changes meaning; readers check it.
FORMAT_VERSION = 1


class StateError(Exception):
    """The state directory holds no running sandbox (the message says why and what to do)."""


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(sandbox: Sandbox, state_dir: Path) -> None:
    """Write the CA copies and the admin kubeconfig (pointing at the copied CA)."""
    assert sandbox.kube.kubeconfig_path is not None, "start the sandbox first"
    assert sandbox.kube.ca_bundle is not None, "a sandbox's API server always has TLS"
    _write(state_dir / KUBERNETES_CA, sandbox.kube.ca_bundle.read_bytes())
    _write(state_dir / AZURE_CA, sandbox.azure.ca_bundle.read_bytes())
    config = yaml.safe_load(sandbox.kube.kubeconfig_path.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["certificate-authority"] = str(state_dir / KUBERNETES_CA)
    # It carries the admin's bearer token: owner-only, as kubectl's own files.
    _write(state_dir / KUBECONFIG, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)


def azure_environment(sandbox: Sandbox, state_dir: Path) -> dict[str, str]:
    """:meth:`AzureEmulator.environ` with the CA bundle copied into the state directory."""
    env = sandbox.azure.environ()
    for key in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        env[key] = str(state_dir / AZURE_CA)
    return env


def _identity(identity: ManagedIdentity) -> dict[str, str]:
    return {
        "name": identity.name,
        "clientId": identity.client_id,
        "resourceId": identity.resource_id,
        "principalId": identity.principal_id,
    }


def describe(
    sandbox: Sandbox, world: DefaultWorld, state_dir: Path, *, control_url: str
) -> dict[str, Any]:
    """Everything ``sandbox.json`` says about a running sandbox (no secret values)."""
    azure = sandbox.azure
    nodes = []
    for node in world.nodes:
        proxy = sandbox.token_proxy(node)
        nodes.append(
            {
                "name": node.name,
                "machine": "virtualMachine" if node.instance is None else "scaleSetInstance",
                "resourceId": node.compute.resource_id,
                "instance": node.instance,
                "imds": sandbox.imds_url(node),
                "tokenProxy": proxy.url,
                "tokenProxyProbes": f"http://{proxy.probe_host}:{proxy.probe_port}",
            }
        )
    federated = world.federated_credential
    return {
        "formatVersion": FORMAT_VERSION,
        "state": "running",
        "pid": os.getpid(),
        "startedAt": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "control": control_url,
        "kubernetes": {
            "server": sandbox.kube.url,
            "kubeconfig": str(state_dir / KUBECONFIG),
            "caBundle": str(state_dir / KUBERNETES_CA),
            "serviceAccountIssuer": sandbox.kube.service_accounts.issuer,
        },
        "azure": {
            "tenantId": azure.tenant_id,
            "subscriptionId": azure.world.default_subscription_id,
            "nodeResourceGroup": sandbox.node_resource_group,
            "identityResourceGroup": sandbox.identity_resource_group_id.rsplit("/", 1)[-1],
            "caBundle": str(state_dir / AZURE_CA),
            # SDKs reach these host names through the routing proxy (HTTPS_PROXY).
            "authorityHost": azure.authority,
            "authority": azure.aad.url,
            "arm": {"host": f"https://{azure.arm.host}", "url": azure.arm.url},
            "keyVaultDnsSuffix": azure.keyvault.dns_suffix,
            "proxy": azure.proxy.url,
            "environment": azure_environment(sandbox, state_dir),
        },
        "nodes": nodes,
        "kubeletIdentity": _identity(sandbox.kubelet_identity),
        "controller": {"clientId": sandbox.controller_principal.client_id},
        "identities": [_identity(i) for i in world.identities],
        "federatedIdentities": [
            {
                **_identity(world.federated_identity),
                "issuer": federated.issuer,
                "subject": federated.subject,
                "audiences": list(federated.audiences),
            }
        ],
        "vaults": [
            {
                "name": world.vault_name,
                "url": world.vault_url,
                "secrets": list(world.secret_names),
                "readers": [r.name for r in world.vault_readers],
            }
        ],
    }


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    """Write ``sandbox.json`` whole."""
    _write(state_dir / STATE_FILE, (json.dumps(state, indent=2) + "\n").encode())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def read_state(state_dir: Path) -> dict[str, Any]:
    """The state of the sandbox running in ``state_dir``.

    Raises:
        StateError: no ``sandbox.json``, an unreadable one, a stopped sandbox, or a sandbox
            whose process is gone.
    """
    path = state_dir / STATE_FILE
    hint = f"start one with: podidentity sandbox --state-dir {state_dir}"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise StateError(f"no sandbox in {state_dir} ({path} does not exist); {hint}") from err
    except (OSError, ValueError) as err:
        raise StateError(f"cannot read {path}: {err}; {hint}") from err
    if not isinstance(state, dict) or state.get("formatVersion") != FORMAT_VERSION:
        raise StateError(f"{path} is not a sandbox state file of this podidentity; {hint}")
    if state.get("state") != "running":
        raise StateError(f"the sandbox in {state_dir} has stopped; {hint}")
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        raise StateError(
            f"the sandbox in {state_dir} is not running (its process {pid} is gone); {hint}"
        )
    return state
