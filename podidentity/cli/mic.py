"""``podidentity mic``: run the reconciler (Managed Identity Controller) against a cluster.

What a controller Deployment runs: Kubernetes from the pod's service account (or a
kubeconfig), ARM with azure-identity's credential conventions or the cluster's ``azure.json``,
leader election on, ``/healthz``, ``/readyz`` and ``/metrics`` on one port. See
``docs/cli-engines.md``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from podidentity.cli._run import StopSignal, run_until_stopped
from podidentity.errors import ConfigError, PodIdentityError

__all__ = ["mic"]

logger = logging.getLogger(__name__)

_IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_PROBE_PORT = 8080
"""``podidentity mic``'s port for ``/healthz``, ``/readyz`` and ``/metrics``."""


@click.command("mic")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file. Default: the pod's service account when KUBERNETES_SERVICE_HOST is "
    "set, else $KUBECONFIG, else ~/.kube/config.",
)
@click.option("--context", default=None, help="Kubeconfig context (default: its current one).")
@click.option(
    "--cloud-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Take the ARM credential (and the cloud) from this azure.json "
    "(/etc/kubernetes/azure.json on AKS nodes): a service principal (aadClientId, "
    "aadClientSecret, tenantId) or a managed identity (useManagedIdentityExtension, "
    "userAssignedIdentityID). Default: azure-identity's DefaultAzureCredential (AZURE_CLIENT_ID, "
    "AZURE_TENANT_ID, AZURE_CLIENT_SECRET / AZURE_CLIENT_CERTIFICATE_PATH, workload identity, "
    "or the managed identity).",
)
@click.option(
    "--authority-host",
    default=None,
    help="Azure AD authority for the ARM credential (default: AZURE_AUTHORITY_HOST, else the "
    "public cloud's login.microsoftonline.com).",
)
@click.option(
    "--arm-endpoint",
    default=None,
    help="Send ARM requests to this URL instead of the cloud's Resource Manager endpoint "
    "(Azure Stack, a test double); tokens are still for the cloud's audience.",
)
@click.option(
    "--cloud",
    default=None,
    help="Azure cloud: AzurePublicCloud, AzureChinaCloud or AzureUSGovernment "
    "[default: the cloud config's, else AzurePublicCloud].",
)
@click.option(
    "--mode",
    type=click.Choice(["standard", "managed"]),
    default="standard",
    show_default=True,
    help="standard assigns identities to VMs and scale sets through ARM; managed assumes they "
    "are assigned out of band (no ARM call, no Azure credential) and only keeps the records.",
)
@click.option(
    "--cluster-wide-bindings/--no-cluster-wide-bindings",
    default=False,
    show_default=True,
    help="Let bindings and identities serve pods of every namespace (aad-pod-identity's old "
    "behaviour, for migration). Default: pod, binding and identity share a namespace.",
)
@click.option(
    "--immutable-identity",
    "immutable_identities",
    multiple=True,
    metavar="CLIENT_ID",
    help="Client ID of an identity never removed from a machine (repeat; in the environment, "
    "separate with spaces).",
)
@click.option(
    "--protected-resource-id",
    "protected_resource_ids",
    multiple=True,
    metavar="RESOURCE_ID",
    help="ARM ID of an identity never removed from a machine, such as the cluster's kubelet "
    "identity (repeat; in the environment, separate with spaces).",
)
@click.option(
    "--resync-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Seconds between full passes over every machine (no ARM request when nothing changed).",
)
@click.option(
    "--arm-refresh-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=1800.0,
    show_default=True,
    help="Seconds between re-reads of each machine from ARM (repairs identities removed by hand).",
)
@click.option(
    "--arm-batch-size",
    type=click.IntRange(1, 150),
    default=150,
    show_default=True,
    help="Identities per ARM request (ARM allows 150).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Machines reconciled concurrently.",
)
@click.option(
    "--queue-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="Work-queue keys handed to workers per second, overall.",
)
@click.option(
    "--queue-burst",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Keys handed out at once before --queue-rate applies.",
)
@click.option(
    "--retry-base-delay",
    type=click.FloatRange(min=0, min_open=True),
    default=0.05,
    show_default=True,
    help="Seconds before the first retry of a failing machine (doubles per failure).",
)
@click.option(
    "--retry-max-delay",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Longest retry delay, in seconds.",
)
@click.option(
    "--leader-election/--no-leader-election",
    default=True,
    show_default=True,
    help="Elect a leader with a Lease so only one replica writes. Turn off only when exactly "
    "one replica runs.",
)
@click.option(
    "--lease-name", default="podidentity-controller", show_default=True, help="The Lease's name."
)
@click.option(
    "--lease-namespace",
    default=None,
    help="The Lease's namespace [default: the pod's namespace in a cluster, else 'default'].",
)
@click.option(
    "--lease-duration",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds a lease lasts; a new leader takes over within this after the old one dies "
    "(at once after a clean stop: the lease is released).",
)
@click.option(
    "--renew-deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds the leader keeps writing without renewing the lease.",
)
@click.option(
    "--retry-period",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Seconds between lease attempts.",
)
@click.option(
    "--holder-identity",
    default="",
    help="This replica's name in the Lease [default: the host (pod) name and a random suffix].",
)
@click.option(
    "--event-component",
    default="podidentity-controller",
    show_default=True,
    help="source.component of the Kubernetes Events it writes.",
)
@click.option(
    "--probe-address",
    default="0.0.0.0",  # noqa: S104 - the pod's own network namespace; no secret is served
    show_default=True,
    help="Address for /healthz, /readyz and /metrics (the kubelet and Prometheus reach the "
    "pod's IP). Nothing secret is served there.",
)
@click.option(
    "--probe-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PROBE_PORT,
    show_default=True,
    help="Port for /healthz, /readyz and /metrics (0: any free port, logged).",
)
def mic(
    kubeconfig: Path | None,
    context: str | None,
    cloud_config: Path | None,
    authority_host: str | None,
    arm_endpoint: str | None,
    cloud: str | None,
    probe_address: str,
    probe_port: int,
    **fields: Any,
) -> None:
    """Run the controller (MIC): assign identities to the nodes of bound pods, until stopped.

    Watches pods, nodes and the aadpodidentity.k8s.io objects, writes AzureAssignedIdentities,
    and puts user-assigned identities on the VMs and scale sets behind the pods' nodes. With
    leader election (the default) only the leader writes. SIGTERM or SIGINT stops it cleanly:
    the lease is released and the exit status is 0.

    Every option can be set in the environment as PODIDENTITY_MIC_<OPTION>
    (PODIDENTITY_MIC_LEASE_NAMESPACE, ...).
    """
    from podidentity.azure import cloud_named
    from podidentity.azure.cloudconfig import read_cloud_config

    config = None
    if cloud_config is not None:
        try:
            config = read_cloud_config(cloud_config)
            if fields["mode"] == "standard":
                config.check()
        except ConfigError as err:
            raise click.BadParameter(str(err), param_hint="'--cloud-config'") from err
    fields["cloud"] = cloud or (config.cloud if config is not None else "AzurePublicCloud")
    try:
        cloud_named(fields["cloud"])
    except ConfigError as err:
        hint = "'--cloud'" if cloud else "'--cloud-config'"
        raise click.BadParameter(str(err), param_hint=hint) from err
    if fields["lease_namespace"] is None:
        fields["lease_namespace"] = _default_lease_namespace(kubeconfig)
    settings = _settings(fields)

    async def program(stop: StopSignal) -> None:
        from podidentity.kube import load_api_client
        from podidentity.reconciler import ControllerRunner

        try:
            api = await load_api_client(kubeconfig, context=context)
        except ConfigError as err:
            raise click.BadParameter(str(err), param_hint="'--kubeconfig'") from err
        try:
            credential = None
            if settings.mode == "standard":
                credential = _credential(config, authority_host)
            try:
                runner = ControllerRunner(
                    api,
                    credential,
                    settings,
                    arm_endpoint=arm_endpoint,
                    probe_host=probe_address,
                    probe_port=probe_port,
                )
                stop.on_stop(runner.stop)
                logger.info(
                    "controller %s starting (%s mode, leader election %s)",
                    runner.controller.holder_identity,
                    settings.mode,
                    f"on lease {settings.lease_namespace}/{settings.lease_name}"
                    if settings.leader_election
                    else "off",
                )
                try:
                    await runner.run()
                except OSError as err:
                    raise click.ClickException(
                        f"cannot serve probes on {probe_address}:{probe_port}: {err}"
                    ) from err
            finally:
                if credential is not None:
                    await credential.close()
        finally:
            await api.close()
        logger.info("controller stopped")

    try:
        run_until_stopped(program)
    except PodIdentityError as err:
        raise click.ClickException(str(err)) from err


def _settings(fields: dict[str, Any]) -> Any:
    from podidentity.reconciler import ControllerSettings

    try:
        return ControllerSettings(**fields)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err


def _default_lease_namespace(kubeconfig: Path | None) -> str:
    """The pod's own namespace when running in a cluster, else ``default``."""
    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        try:
            return _IN_CLUSTER_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            pass
    return "default"


def _credential(config: Any, authority: str | None) -> Any:
    """The ARM credential: from the cloud config, else azure-identity's default chain."""
    if config is not None:
        try:
            credential = config.credential(authority=authority)
        except ConfigError as err:
            raise click.BadParameter(str(err), param_hint="'--cloud-config'") from err
        kind = "managed identity" if config.uses_managed_identity else "service principal"
        logger.info("ARM credential: %s from the cloud config", kind)
        return credential
    from azure.identity.aio import DefaultAzureCredential

    logger.info(
        "ARM credential: DefaultAzureCredential (environment, workload or managed identity)"
    )
    options: dict[str, Any] = {}
    if authority is not None:
        options["authority"] = authority
    return DefaultAzureCredential(**options)


# --help names each option's environment variable (click derives it from the parameter's name).
for _param in mic.params:
    if isinstance(_param, click.Option):
        _param.show_envvar = True
