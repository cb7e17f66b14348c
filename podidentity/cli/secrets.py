"""``podidentity secrets``: Key Vault objects into files, an environment or a ``.env`` file.

podidentity secrets fetch --spec spec.yaml --out /mnt/secrets      # an init container
podidentity secrets exec --spec spec.yaml -- python app.py          # values only in env
podidentity secrets watch --spec spec.yaml --out /mnt/secrets       # a rotation sidecar
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from podidentity.errors import ConfigError, KeyVaultFetchError, PodIdentityError
from podidentity.keyvault import (
    DirectorySink,
    EnvFileSink,
    FetchSettings,
    KubernetesSecretSink,
    PollResult,
    Sink,
    VaultObject,
    Watcher,
    exec_with_env,
    fetch,
    load_spec,
    make_credential,
)

__all__ = ["secrets"]

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def _common(fn: _F) -> _F:
    """The options every ``secrets`` command shares: spec, identity, vault suffix, retries."""
    options = [
        click.option(
            "--spec",
            "spec",
            required=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="YAML file listing the objects (see docs/keyvault.md).",
        ),
        click.option(
            "--client-id",
            default=None,
            help="Client ID of the managed (or workload) identity to use; default: the pod's.",
        ),
        click.option(
            "--resource-id",
            default=None,
            help="ARM resource ID of the managed identity to use (instead of --client-id).",
        ),
        click.option(
            "--vault-suffix",
            default="vault.azure.net",
            show_default=True,
            help="DNS suffix completing vault names (vault.azure.cn, vault.usgovcloudapi.net).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 256),
            default=16,
            show_default=True,
            help="Most requests in flight at once.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _load(spec: Path) -> tuple[VaultObject, ...]:
    try:
        return load_spec(spec)
    except PodIdentityError as err:
        raise click.BadParameter(str(err), param_hint="--spec") from err


def _settings(vault_suffix: str, concurrency: int) -> FetchSettings:
    return FetchSettings(vault_suffix=vault_suffix, concurrency=concurrency)


def _credential(client_id: str | None, resource_id: str | None) -> Any:
    try:
        return make_credential(client_id=client_id, resource_id=resource_id)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err


def _sinks(out: Path | None, env_file: Path | None, kube_secret: str | None) -> list[Sink]:
    sinks: list[Sink] = []
    if out is not None:
        sinks.append(DirectorySink(out))
    if env_file is not None:
        sinks.append(EnvFileSink(env_file))
    secret = _kube_secret_sink(kube_secret)
    if secret is not None:
        sinks.append(secret)
    if not sinks:
        raise click.UsageError(
            "say where to deliver: --out DIR, --env-file FILE and/or --kube-secret NS/NAME"
        )
    return sinks


def _kube_secret_sink(target: str | None) -> Sink | None:
    """A Secret sink for ``NAMESPACE/NAME``, with in-cluster config or the kubeconfig."""
    if target is None:
        return None
    namespace, slash, name = target.partition("/")
    if not slash or not namespace or not name:
        raise click.BadParameter("give NAMESPACE/NAME", param_hint="--kube-secret")
    import kubernetes  # only when asked for: the import is slow

    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        try:
            # KUBECONFIG as it is now (the client reads it once, at import).
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG")
            )
        except (kubernetes.config.ConfigException, OSError) as err:
            raise click.UsageError(f"--kube-secret: no Kubernetes configuration: {err}") from err
    return KubernetesSecretSink(kubernetes.client.CoreV1Api(), namespace, name)


def _kube_secret_option(fn: _F) -> _F:
    return click.option(
        "--kube-secret",
        metavar="NAMESPACE/NAME",
        default=None,
        help="Also write the outputs as the keys of this Kubernetes Secret (created, or updated "
        "if podidentity manages it); in-cluster configuration, else the kubeconfig.",
    )(fn)


def _report(error: KeyVaultFetchError) -> None:
    for failure in error.failures:
        click.echo(f"error: {failure}", err=True)


@click.group()
def secrets() -> None:
    """Read Key Vault secrets, certificates and keys with the pod's identity."""


@secrets.command("fetch")
@_common
@_kube_secret_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write one file per output into (swapped atomically as a set).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the outputs as NAME='value' lines (shell syntax) into this file.",
)
def fetch_command(
    spec: Path,
    client_id: str | None,
    resource_id: str | None,
    vault_suffix: str,
    concurrency: int,
    kube_secret: str | None,
    out: Path | None,
    env_file: Path | None,
) -> None:
    """Fetch every object of the spec once and write them (an init container's job).

    Nothing is written unless every object was fetched: the exit status is 1 and each failed
    object is named on stderr.
    """
    objects = _load(spec)
    sinks = _sinks(out, env_file, kube_secret)
    credential = _credential(client_id, resource_id)
    try:
        with credential:
            result = fetch(
                objects, credential=credential, settings=_settings(vault_suffix, concurrency)
            )
    except KeyVaultFetchError as err:
        _report(err)
        raise SystemExit(1) from None
    for sink in sinks:
        try:
            sink.write(dict(result))
        except PodIdentityError as err:
            raise click.ClickException(str(err)) from err
    click.echo(f"wrote {len(result)} outputs", err=True)


@secrets.command("exec", context_settings={"ignore_unknown_options": True})
@_common
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    spec: Path,
    client_id: str | None,
    resource_id: str | None,
    vault_suffix: str,
    concurrency: int,
    command: tuple[str, ...],
) -> None:
    """Fetch the objects, then run COMMAND with them as environment variables.

    Give the command after '--'. Each output's alias is its variable's name; the values live
    only in the program's environment, never on disk. This process is replaced by COMMAND.
    """
    objects = _load(spec)
    credential = _credential(client_id, resource_id)
    try:
        with credential:
            result = fetch(
                objects, credential=credential, settings=_settings(vault_suffix, concurrency)
            )
    except KeyVaultFetchError as err:
        _report(err)
        raise SystemExit(1) from None
    try:
        exec_with_env(dict(result), command)
    except PodIdentityError as err:
        raise click.ClickException(str(err)) from err


@secrets.command("watch")
@_common
@_kube_secret_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to keep one file per output in (swapped atomically as a set).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the outputs as NAME='value' lines in this file.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    default=120.0,
    show_default=True,
    help="Seconds between polls. A poll costs one list request per page the vault returns "
    "(25 secrets at most a page), plus one GET per changed object.",
)
@click.option(
    "--notify-pid",
    type=int,
    default=None,
    help="Send --notify-signal to this process after every change (needs a shared process "
    "namespace in a pod).",
)
@click.option(
    "--notify-signal",
    default="SIGHUP",
    show_default=True,
    help="The signal for --notify-pid.",
)
def watch_command(
    spec: Path,
    client_id: str | None,
    resource_id: str | None,
    vault_suffix: str,
    concurrency: int,
    kube_secret: str | None,
    out: Path | None,
    env_file: Path | None,
    interval: float,
    notify_pid: int | None,
    notify_signal: str,
) -> None:
    """Keep files in step with Key Vault until stopped (SIGTERM or SIGINT).

    Only changed objects are fetched again; an object that fails keeps its last good file.
    """
    objects = _load(spec)
    sinks = _sinks(out, env_file, kube_secret)
    signum = _signal(notify_signal)
    credential = _credential(client_id, resource_id)
    stop = threading.Event()

    def on_change(poll: PollResult) -> None:
        if notify_pid is not None:
            try:
                os.kill(notify_pid, signum)
            except OSError as err:
                logger.error("cannot signal process %d: %s", notify_pid, err.strerror)

    def stop_now(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, stop_now) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with (
            credential,
            Watcher(
                objects,
                sinks,
                credential=credential,
                settings=_settings(vault_suffix, concurrency),
                interval=interval,
                on_change=on_change,
            ) as watcher,
        ):
            watcher.run(stop)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _signal(name: str) -> signal.Signals:
    key = name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"
    try:
        return signal.Signals[key]
    except KeyError:
        raise click.BadParameter(f"unknown signal {name!r}", param_hint="--notify-signal") from None
