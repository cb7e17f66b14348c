"""Reading a Secret's data (a service principal's client secret or certificate)."""

from __future__ import annotations

import base64
import binascii

from kubernetes.aio import client as kclient
from kubernetes.aio.client.exceptions import ApiException

from podidentity.errors import KubeError
from podidentity.kube.serviceaccounts import kube_error

__all__ = ["read_secret_data"]


async def read_secret_data(api: kclient.ApiClient, namespace: str, name: str) -> dict[str, bytes]:
    """The decoded ``data`` of Secret ``namespace/name`` (values never logged).

    Raises:
        podidentity.errors.KubeNotFoundError: no such Secret.
        podidentity.errors.KubeError: the read failed otherwise, or the data is not base64.
    """
    try:
        secret = await kclient.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as err:
        raise kube_error(err, f"Secret {namespace}/{name}") from None
    decoded: dict[str, bytes] = {}
    for key, value in (secret.data or {}).items():
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise KubeError(f"Secret {namespace}/{name}: data.{key} is not base64") from None
    return decoded
