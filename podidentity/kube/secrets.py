"""Reading a Secret's data (a service principal's client secret or certificate)."""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from podidentity.errors import KubeError
from podidentity.kube._client import KubeClient

__all__ = ["read_secret_data"]


async def read_secret_data(client: KubeClient, namespace: str, name: str) -> dict[str, bytes]:
    """The decoded ``data`` of Secret ``namespace/name`` (values are never logged).

    Raises:
        podidentity.errors.KubeNotFoundError: no such Secret.
        podidentity.errors.KubeError: the read failed otherwise, or the data is not base64.
    """
    path = (
        f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/secrets/"
        f"{urllib.parse.quote(name, safe='')}"
    )
    secret = await client.request("GET", path)
    decoded: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise KubeError(f"Secret {namespace}/{name}: data.{key} is not base64") from None
    return decoded
