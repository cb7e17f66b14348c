"""Building a ``kubernetes.aio`` ``ApiClient`` from a kubeconfig or the pod's service account.

Loading is the official client's; this module only picks the source and never touches the
process-wide default ``Configuration`` (an embedding program may have its own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from podidentity.errors import ConfigError

__all__ = ["load_api_client"]


async def load_api_client(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    in_cluster: bool | None = None,
) -> Any:
    """A new ``kubernetes.aio.client.ApiClient`` (close it when done).

    Args:
        kubeconfig: path of a kubeconfig file; ``None`` uses ``$KUBECONFIG`` or
            ``~/.kube/config``, or the in-cluster service account when running in a pod.
        context: the kubeconfig context; ``None`` uses its current context.
        in_cluster: force (``True``) or forbid (``False``) the in-cluster configuration;
            ``None`` decides by ``KUBERNETES_SERVICE_HOST`` when no kubeconfig is named.

    Raises:
        ConfigError: no configuration could be loaded; the message says from where.
    """
    from kubernetes.aio import client as aclient
    from kubernetes.aio import config as aconfig
    from kubernetes.aio.config.config_exception import ConfigException

    configuration = aclient.Configuration()
    use_cluster = in_cluster
    if use_cluster is None:
        use_cluster = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if use_cluster:
            aconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            path = _kubeconfig_path(kubeconfig)
            await aconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except ConfigException as err:
        where = "the in-cluster service account" if use_cluster else f"kubeconfig {kubeconfig!r}"
        raise ConfigError(f"cannot load Kubernetes configuration from {where}: {err}") from err
    return aclient.ApiClient(configuration)


def _kubeconfig_path(kubeconfig: str | os.PathLike[str] | None) -> Path:
    named = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    path = Path(named) if named else Path.home() / ".kube" / "config"
    if not path.is_file():
        raise ConfigError(
            f"kubeconfig {str(path)!r} does not exist: pass a kubeconfig path, set "
            "KUBECONFIG, or run in a pod with a service account"
        )
    return path
