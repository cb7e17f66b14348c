"""A node's Instance Metadata Service (IMDS): managed-identity tokens and metadata.

:class:`ImdsClient` asks the IMDS of the machine it runs on for a token of a user-assigned (or
the system-assigned) identity, and forwards other metadata requests. IMDS allows about 5
concurrent and 20 token requests per second per VM, so the client keeps its own concurrency
below that; retries are the caller's (:func:`~podidentity.azure.tokens.retry_within`), with
IMDS's answers turned into :mod:`podidentity.errors`:

=========================================  ==================================================
IMDS answers                               raised
=========================================  ==================================================
400 ``Identity not found``                 :class:`~podidentity.errors.IdentityNotAssignedError`
other 400                                  :class:`~podidentity.errors.AzureError`
429                                        :class:`~podidentity.errors.AzureThrottledError`
404, 410, 5xx, no answer                   :class:`~podidentity.errors.AzureUnavailableError`
401, 403                                   :class:`~podidentity.errors.AzureForbiddenError`
=========================================  ==================================================
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from podidentity.azure.tokens import AccessToken
from podidentity.errors import (
    AzureError,
    AzureForbiddenError,
    AzureThrottledError,
    AzureUnavailableError,
    IdentityNotAssignedError,
)

__all__ = ["DEFAULT_IMDS_URL", "IMDS_API_VERSION", "ImdsClient", "ImdsResponse"]

logger = logging.getLogger(__name__)

DEFAULT_IMDS_URL = "http://169.254.169.254"
"""Where IMDS answers on every Azure VM."""
IMDS_API_VERSION = "2018-02-01"
"""The token endpoint's api-version every Azure SDK uses."""
_TOKEN_PATH = "/metadata/identity/oauth2/token"  # noqa: S105 - a path
# Below IMDS's 5 concurrent requests per VM, leaving room for the node's own agents.
_DEFAULT_CONCURRENCY = 4
# Headers passed on when forwarding: never X-Forwarded-For (IMDS refuses it) nor anything that
# says whom the proxy forwards for.
_FORWARDED_HEADERS = ("metadata", "accept", "accept-encoding", "user-agent")


@attrs.frozen
class ImdsResponse:
    """A forwarded metadata answer, passed back to the caller as it came."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class ImdsClient:
    """Talks to one node's IMDS over HTTP.

    Args:
        base_url: the IMDS URL (:data:`DEFAULT_IMDS_URL` on Azure).
        timeout: seconds for one request.
        concurrency: most requests in flight at once.
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_IMDS_URL,
        *,
        timeout: float = 10.0,
        concurrency: int = _DEFAULT_CONCURRENCY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # trust_env=False: IMDS is link-local and must never go through HTTPS_PROXY/HTTP_PROXY.
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, trust_env=False
        )
        self._slots = asyncio.Semaphore(concurrency)

    def __repr__(self) -> str:
        return f"ImdsClient({self.base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def get_token(
        self, resource: str, *, parameter: tuple[str, str] | None = None
    ) -> AccessToken:
        """A token for ``resource`` of the identity named by ``parameter``.

        Args:
            resource: the audience (``https://vault.azure.net``).
            parameter: ``("client_id", "...")``, ``("object_id", ...)``, ``("msi_res_id", ...)``
                or ``("mi_res_id", ...)``; ``None`` for the machine's only identity.
                ``("resource_id", ...)`` (which IMDS ignores) is sent as ``msi_res_id``.

        Raises:
            podidentity.errors.AzureError: a subclass saying what IMDS answered (module doc).
        """
        params = {"api-version": IMDS_API_VERSION, "resource": resource}
        if parameter is not None:
            name = "msi_res_id" if parameter[0] == "resource_id" else parameter[0]
            params[name] = parameter[1]
        started = time.time()
        response = await self._send("GET", _TOKEN_PATH, params=params, headers={"Metadata": "true"})
        if response.status_code != 200:
            raise _error(response)
        try:
            body = response.json()
            expires_on = _int(body.get("expires_on"))
            if expires_on is None:
                expires_in = _int(body.get("expires_in"))
                if expires_in is None:
                    raise ValueError("neither expires_on nor expires_in")
                expires_on = int(started) + expires_in
            ext_in = _int(body.get("ext_expires_in"))
            return AccessToken(
                token=str(body["access_token"]),
                expires_on=expires_on,
                resource=str(body.get("resource") or resource),
                client_id=str(body.get("client_id") or ""),
                not_before=_int(body.get("not_before")) or 0,
                ext_expires_on=int(started) + ext_in if ext_in is not None else 0,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise AzureUnavailableError(
                f"IMDS at {self.base_url} answered 200 without a usable token body ({err})",
                status_code=200,
            ) from err

    async def forward(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str]
    ) -> ImdsResponse:
        """Forward a metadata request as it came (path and query untouched).

        Only a few harmless headers are passed on; nothing identifies the original caller.
        """
        kept = {k: v for k, v in headers.items() if k.lower() in _FORWARDED_HEADERS}
        url = httpx.URL(self.base_url + path, query=query)
        response = await self._send(method, url, headers=kept)
        passed = tuple(
            (k, v)
            for k, v in response.headers.items()
            if k.lower() in ("content-type", "retry-after", "cache-control")
        )
        return ImdsResponse(response.status_code, passed, response.content)

    async def _send(self, method: str, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            try:
                return await self._client.request(method, url, **kwargs)
            except httpx.HTTPError as err:
                raise AzureUnavailableError(
                    f"IMDS at {self.base_url} did not answer: {type(err).__name__}"
                ) from err


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _error(response: httpx.Response) -> AzureError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("error") or "")
    description = str(body.get("error_description") or response.reason_phrase)
    message = f"IMDS answered {status} {code}: {description}"
    if status == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        return AzureThrottledError(message, retry_after=retry_after, status_code=status, code=code)
    if status == 400 and "identity not found" in description.lower():
        return IdentityNotAssignedError(message, status_code=status, code=code)
    if status in (401, 403):
        return AzureForbiddenError(message, status_code=status, code=code)
    if status in (404, 410) or status >= 500:
        return AzureUnavailableError(message, status_code=status, code=code)
    return AzureError(message, status_code=status, code=code)


def _retry_after(value: str | None, default: float = 1.0) -> float:
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default
