"""``podidentity nmi``: run the token proxy (NMI) of one node.

What the token proxy DaemonSet runs (``hostNetwork: true``, the node's name from the downward
API): the IMDS-compatible endpoint, its probes and metrics, and with ``--iptables`` the DNAT
rule that sends pods' ``169.254.169.254:80`` traffic to it. See ``docs/cli-engines.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path
from typing import Any

import attrs
import click

from podidentity.cli._run import StopSignal, run_until_stopped
from podidentity.errors import ConfigError, PodIdentityError

__all__ = ["nmi"]

logger = logging.getLogger(__name__)


_LOOPBACK_NOTE = (
    "The DNAT target is a loopback address: pods reach it only with "
    "net.ipv4.conf.<pod interface>.route_localnet=1 (or listen on the node's IP)."
)


def _label(value: str) -> tuple[str, str]:
    key, equals, label = value.partition("=")
    if not equals or not key:
        raise click.BadParameter(f"{value!r}: give KEY=VALUE", param_hint="'--controller-label'")
    return key, label


@click.command("nmi")
@click.option(
    "--node",
    required=True,
    envvar=["PODIDENTITY_NMI_NODE", "NODE_NAME"],
    show_envvar=True,
    help="The node this proxy serves (in a DaemonSet: spec.nodeName from the downward API).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file. Default: the pod's service account when KUBERNETES_SERVICE_HOST is "
    "set, else $KUBECONFIG, else ~/.kube/config.",
)
@click.option("--context", default=None, help="Kubeconfig context (default: its current one).")
@click.option(
    "--listen-address",
    default="127.0.0.1",
    show_default=True,
    help="Address of the token endpoint. Loopback keeps it off the network; the DNAT rule "
    "then needs route_localnet on the pod interfaces. With hostNetwork, the node's IP "
    "(status.hostIP) is the usual choice.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=2579,
    show_default=True,
    help="Port of the token endpoint (aad-pod-identity's).",
)
@click.option(
    "--probe-address",
    default="127.0.0.1",
    show_default=True,
    help="Address for /healthz, /readyz and /metrics (never tokens). With hostNetwork the "
    "kubelet reaches 127.0.0.1; Prometheus needs the node's IP.",
)
@click.option(
    "--probe-port",
    type=click.IntRange(0, 65535),
    default=8085,
    show_default=True,
    help="Port for /healthz, /readyz and /metrics.",
)
@click.option(
    "--imds-url",
    default="http://169.254.169.254",
    show_default=True,
    help="The node's Instance Metadata Service, where managed-identity tokens come from.",
)
@click.option(
    "--metadata-header-required/--no-metadata-header-required",
    default=True,
    show_default=True,
    help="Refuse token requests without 'Metadata: true', as IMDS does.",
)
@click.option(
    "--block-instance-metadata/--no-block-instance-metadata",
    default=False,
    show_default=True,
    help="Answer /metadata/instance with 403 instead of forwarding it to the node's IMDS.",
)
@click.option(
    "--require-service-account-token/--no-require-service-account-token",
    default=False,
    show_default=True,
    help="Callers must also prove which pod they are with their projected service-account "
    "token (defeats address spoofing; needs a client that sends it).",
)
@click.option(
    "--pending-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a request waits for the pod's identity to be assigned.",
)
@click.option(
    "--service-account-audience",
    default="podidentity-nmi",
    show_default=True,
    help="Audience callers' service-account tokens must carry.",
)
@click.option(
    "--request-deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Seconds one request may spend on upstream calls and retries.",
)
@click.option(
    "--pending-retry-after",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Retry-After (seconds) of the 'identity not ready' answer.",
)
@click.option(
    "--cache-size",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Most tokens cached.",
)
@click.option(
    "--refresh-ahead",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Refresh a cached token this many seconds before it expires.",
)
@click.option(
    "--refresh-jitter",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Up to this many seconds earlier, at random per token.",
)
@click.option(
    "--host-address",
    "host_addresses",
    multiple=True,
    metavar="ADDRESS",
    help="Source address that is the node itself, allowed /host/token (repeat; default "
    "127.0.0.1 and ::1).",
)
@click.option(
    "--controller-namespace",
    default="kube-system",
    show_default=True,
    help="Namespace of the controller's own pods (they get the node's identities).",
)
@click.option(
    "--controller-label",
    "controller_labels",
    multiple=True,
    metavar="KEY=VALUE",
    help="A label of the controller's own pods; all must match (repeat; default "
    "app.kubernetes.io/component=podidentity-controller).",
)
@click.option(
    "--cluster-wide-bindings/--no-cluster-wide-bindings",
    default=False,
    show_default=True,
    help="Serve identities a controller running with --cluster-wide-bindings assigned from "
    "bindings in other namespaces (migration only; set both or neither).",
)
@click.option(
    "--iptables/--no-iptables",
    "use_iptables",
    default=False,
    show_default=True,
    help="Install the DNAT rule sending pods' 169.254.169.254:80 to this proxy, keep it in "
    "place, and remove it on exit (needs NET_ADMIN and hostNetwork). Without it, the rules "
    "to install are printed.",
)
@click.option(
    "--iptables-target",
    default=None,
    metavar="ADDRESS",
    help="DNAT destination address [default: --listen-address].",
)
@click.option(
    "--iptables-chain",
    default="podidentity-nmi",
    show_default=True,
    help="The nat chain holding the rule.",
)
@click.option(
    "--pod-cidr",
    "pod_cidrs",
    multiple=True,
    metavar="CIDR",
    help="Redirect only traffic from this pod network (repeat).",
)
@click.option(
    "--pod-interface",
    "pod_interfaces",
    multiple=True,
    metavar="NAME",
    help="Redirect only traffic arriving on this interface (repeat; a prefix with '+', "
    "as iptables takes it: 'azv+').",
)
@click.option(
    "--iptables-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds between checks that the rule is still in place.",
)
@click.option(
    "--iptables-command",
    default="iptables",
    show_default=True,
    help="The iptables program (iptables-legacy, iptables-nft, a path).",
)
def nmi(
    node: str,
    kubeconfig: Path | None,
    context: str | None,
    listen_address: str,
    port: int,
    probe_address: str,
    probe_port: int,
    imds_url: str,
    use_iptables: bool,
    iptables_target: str | None,
    iptables_chain: str,
    pod_cidrs: tuple[str, ...],
    pod_interfaces: tuple[str, ...],
    iptables_interval: float,
    iptables_command: str,
    **fields: Any,
) -> None:
    """Run the token proxy (NMI) of one node, until stopped.

    Pods' IMDS requests, redirected here, get tokens of their own assigned identities only;
    the caller is the pod whose IP is the TCP source address. SIGTERM or SIGINT stops it
    cleanly (the iptables rule, if installed, is removed; exit status 0).

    Every option can be set in the environment as PODIDENTITY_NMI_<OPTION>; the node also as
    NODE_NAME.
    """
    from podidentity.nmi import TokenProxySettings
    from podidentity.nmi.iptables import IptablesKeeper, RedirectRule

    if not fields["host_addresses"]:
        del fields["host_addresses"]
    if fields["controller_labels"]:
        fields["controller_labels"] = [_label(v) for v in fields["controller_labels"]]
    else:
        del fields["controller_labels"]
    try:
        settings = TokenProxySettings(**fields)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    if port == 0 and use_iptables:
        raise click.BadParameter("--iptables needs a fixed port", param_hint="'--port'")
    # Checked now; the port is filled in once the proxy listens (--port 0 picks one).
    rule_options: dict[str, Any] = {
        "target_port": port or 2579,
        "chain": iptables_chain,
        "pod_cidrs": pod_cidrs,
        "pod_interfaces": pod_interfaces,
    }
    try:
        checked = RedirectRule(target_host="127.0.0.1", **rule_options)
        IptablesKeeper(checked, executable=iptables_command, interval=iptables_interval)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    rule: RedirectRule | None = None
    try:
        rule = RedirectRule(target_host=iptables_target or listen_address, **rule_options)
    except ConfigError as err:
        if use_iptables or iptables_target:
            hint = "'--iptables-target'" if iptables_target else "'--listen-address'"
            raise click.BadParameter(str(err), param_hint=hint) from err
        # Listening on 0.0.0.0 or IPv6 is fine; only the rule to print needs a target.
        rule_problem = str(err)

    async def program(stop: StopSignal) -> None:
        from podidentity.kube import load_api_client
        from podidentity.nmi import TokenProxy, TokenProxyServer

        stopped = stop.event()
        try:
            api = await load_api_client(kubeconfig, context=context)
        except ConfigError as err:
            raise click.BadParameter(str(err), param_hint="'--kubeconfig'") from err
        try:
            proxy = TokenProxy.connect(node, api=api, imds_url=imds_url, settings=settings)
            server = TokenProxyServer(
                proxy,
                host=listen_address,
                port=port,
                probe_host=probe_address,
                probe_port=probe_port,
            )
            try:
                await server.start()
            except OSError as err:
                await server.stop()
                raise click.ClickException(f"cannot listen: {err}") from err
            logger.info(
                "token proxy for node %s: tokens on %s, probes and metrics on %s",
                node,
                server.url,
                server.probe_url,
            )
            try:
                if rule is None:
                    click.echo(
                        f"# No redirect rule to print: {rule_problem}; give --iptables-target."
                    )
                    await stopped.wait()
                    return
                rule_here = attrs.evolve(rule, target_port=server.port)
                loopback = ipaddress.IPv4Address(rule_here.target_host).is_loopback
                if use_iptables:
                    if loopback:
                        logger.warning("%s", _LOOPBACK_NOTE)
                    keeper = IptablesKeeper(
                        rule_here, executable=iptables_command, interval=iptables_interval
                    )
                    await _keep_rules(keeper, stopped)
                else:
                    note = f"# {_LOOPBACK_NOTE}\n" if loopback else ""
                    click.echo(
                        "# Without --iptables, install the redirect of pods' IMDS traffic "
                        f"yourself:\n{note}" + rule_here.script(iptables_command)
                    )
                    await stopped.wait()
            finally:
                await server.stop()
        finally:
            await api.close()
        logger.info("token proxy for node %s stopped", node)

    try:
        run_until_stopped(program)
    except PodIdentityError as err:
        raise click.ClickException(str(err)) from err


async def _keep_rules(keeper: Any, stopped: asyncio.Event) -> None:
    """Install the rules, keep them until ``stopped``, remove them (also after a failure)."""
    keeping: asyncio.Future[None] | None = None
    try:
        await keeper.ensure()
        keeping = asyncio.ensure_future(keeper.keep(stopped))
        await stopped.wait()
    finally:
        if keeping is not None:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        try:
            await keeper.remove()
        except PodIdentityError as err:
            logger.error("iptables: could not remove the redirect: %s", err)


# --help names each option's environment variable (click derives it from the parameter's name).
for _param in nmi.params:
    if isinstance(_param, click.Option):
        _param.show_envvar = True
