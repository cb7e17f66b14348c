"""An asyncio client for the ``identity`` block of VMs and scale sets in Azure Resource Manager.

What the reconciler needs from ARM, and nothing else: read which user-assigned identities a
VM or scale set has, and add or remove some with one ``PATCH`` (GET first, so identities that
are already right cost no write). It follows long-running operations
(``Azure-AsyncOperation`` or ``Location`` polling, honouring ``Retry-After``) and also accepts
synchronous answers; on ``429`` it blocks the whole subscription for ``Retry-After`` seconds
(further calls raise :class:`~podidentity.errors.AzureThrottledError` without a request);
when ARM refuses some identities (``LinkedAuthorizationFailed``, ``FailedIdentityOperation``)
it drops the identities the error names and retries the rest, reporting what it dropped.
Resource IDs are compared case-insensitively (ARM answers ``resourcegroups``).

Transport is httpx; tokens come from any azure-core ``AsyncTokenCredential``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs
import httpx

from podidentity.azure.ids import normalize_id
from podidentity.errors import (
    AzureAuthenticationError,
    AzureError,
    AzureForbiddenError,
    AzureNotFoundError,
    AzureThrottledError,
    AzureUnavailableError,
    ConfigError,
)

__all__ = [
    "AZURE_CHINA_CLOUD",
    "AZURE_PUBLIC_CLOUD",
    "AZURE_US_GOVERNMENT",
    "ArmClient",
    "AsyncTokenCredential",
    "AzureCloud",
    "IdentityChangeResult",
    "MachineIdentities",
    "cloud_named",
]

_log = logging.getLogger(__name__)

API_VERSION = "2023-03-01"
_RETRYABLE_IDENTITY_CODES = frozenset({"LinkedAuthorizationFailed", "FailedIdentityOperation"})
_IDENTITY_ID = re.compile(
    r"/subscriptions/[^/'\",\s]+/resourcegroups/[^/'\",\s]+/providers/"
    r"microsoft\.managedidentity/userassignedidentities/[^/'\",\s]+",
    re.IGNORECASE,
)
_TERMINAL = {"succeeded", "failed", "canceled", "cancelled"}


class AsyncTokenCredential(Protocol):
    """azure-core's ``AsyncTokenCredential``: what the client needs of it."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """An access token (``.token``) for ``scopes``."""


@attrs.frozen
class AzureCloud:
    """An Azure cloud's Resource Manager endpoint.

    Attributes:
        name: the cloud's name as Azure CLI spells it.
        resource_manager: the ARM endpoint (``https://management.azure.com``).
        audience: the token audience; the scope requested is ``<audience>/.default``.
    """

    name: str
    resource_manager: str
    audience: str

    @property
    def scope(self) -> str:
        """The OAuth scope for ARM tokens."""
        return self.audience.rstrip("/") + "/.default"


AZURE_PUBLIC_CLOUD = AzureCloud(
    "AzurePublicCloud", "https://management.azure.com", "https://management.azure.com"
)
AZURE_CHINA_CLOUD = AzureCloud(
    "AzureChinaCloud", "https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn"
)
AZURE_US_GOVERNMENT = AzureCloud(
    "AzureUSGovernment",
    "https://management.usgovcloudapi.net",
    "https://management.usgovcloudapi.net",
)
_CLOUDS = {c.name.lower(): c for c in (AZURE_PUBLIC_CLOUD, AZURE_CHINA_CLOUD, AZURE_US_GOVERNMENT)}
_CLOUDS.update(public=AZURE_PUBLIC_CLOUD, china=AZURE_CHINA_CLOUD, usgov=AZURE_US_GOVERNMENT)


def cloud_named(name: str) -> AzureCloud:
    """The cloud for a name, case-insensitive.

    Names: ``AzurePublicCloud``, ``AzureChinaCloud``, ``AzureUSGovernment``, or ``public``,
    ``china``, ``usgov``.

    Raises:
        ConfigError: an unknown name; the message lists the known ones.
    """
    found = _CLOUDS.get(name.strip().lower())
    if found is None:
        known = ", ".join(sorted({c.name for c in _CLOUDS.values()}))
        raise ConfigError(f"unknown Azure cloud {name!r}: use one of {known}")
    return found


@attrs.frozen
class MachineIdentities:
    """The identity block of a VM or scale set.

    Attributes:
        machine: the machine's ARM ID as requested.
        system_assigned: whether it has a system-assigned identity (kept on every write).
        user_assigned: user-assigned identities, normalized resource ID → client ID.
        original_ids: normalized → the resource ID as ARM spelled it.
    """

    machine: str
    system_assigned: bool = False
    user_assigned: Mapping[str, str] = attrs.field(factory=dict)
    original_ids: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class IdentityChangeResult:
    """What :meth:`ArmClient.change_identities` did.

    Attributes:
        identities: the machine's identities afterwards.
        dropped: identities ARM refused to add (normalized ID → the error), left out.
        writes: how many PATCH requests were sent (0 when nothing needed changing).
    """

    identities: MachineIdentities
    dropped: Mapping[str, AzureError] = attrs.field(factory=dict)
    writes: int = 0


Observer = Callable[[str, int, str, float], None]
"""Called after each ARM request: ``(operation, status, error code or "", seconds)``.

``operation`` is ``get``, ``patch`` or ``poll`` for one request, and ``operation`` once a
long-running write ends: seconds since ARM accepted it, and the code it failed with if it did.
"""


class ArmClient:
    """Reads and changes the user-assigned identities of VMs and scale sets.

    Args:
        credential: an azure-core ``AsyncTokenCredential`` (azure-identity's aio credentials).
        cloud: which Azure cloud (:data:`AZURE_PUBLIC_CLOUD` by default).
        http_client: an ``httpx.AsyncClient`` to send with (proxies, CA); one is created and
            owned otherwise.
        api_version: the Compute API version.
        poll_interval: seconds between long-running-operation polls without ``Retry-After``.
        operation_timeout: give up on a long-running operation after this many seconds.
        default_throttle: seconds to block a subscription after a 429 without ``Retry-After``.
        max_identity_retries: rounds of dropping refused identities before giving up.
        observer: called after each request, for metrics.
        clock: monotonic seconds (inject in tests).
        sleep: awaitable sleep (inject in tests).
    """

    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        cloud: AzureCloud = AZURE_PUBLIC_CLOUD,
        http_client: httpx.AsyncClient | None = None,
        api_version: str = API_VERSION,
        poll_interval: float = 1.0,
        operation_timeout: float = 600.0,
        default_throttle: float = 10.0,
        max_identity_retries: int = 5,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.credential = credential
        self.cloud = cloud
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=30.0)
        self.api_version = api_version
        self.poll_interval = poll_interval
        self.operation_timeout = operation_timeout
        self.default_throttle = default_throttle
        self.max_identity_retries = max_identity_retries
        self.observer = observer
        self._clock = clock
        self._sleep = sleep
        self._blocked_until: dict[str, float] = {}
        self.requests = 0
        """Requests sent so far (polls included)."""

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> ArmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public operations ---------------------------------------------------------------------

    async def get_identities(self, machine: str) -> MachineIdentities:
        """GET a VM or scale set and read its identity block.

        Raises:
            AzureError: the matching subclass (not found, forbidden, throttled, unavailable).
        """
        response = await self._request("GET", machine, operation="get")
        return _read_identities(machine, response.json())

    async def change_identities(
        self,
        machine: str,
        *,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        current: MachineIdentities | None = None,
    ) -> IdentityChangeResult:
        """Make sure ``add`` are on the machine and ``remove`` are not, with one PATCH.

        Reads the machine first unless ``current`` is given; sends nothing when it already
        agrees. Identities ARM refuses are dropped and the rest retried; they are reported in
        :attr:`IdentityChangeResult.dropped`. Removals are never dropped.

        Raises:
            AzureError: anything other than a refusal of named identities.
        """
        state = current if current is not None else await self.get_identities(machine)
        wanted = {normalize_id(rid): rid for rid in add}
        unwanted = {normalize_id(rid) for rid in remove}
        dropped: dict[str, AzureError] = {}
        writes = 0
        for _ in range(self.max_identity_retries + 1):
            to_add = {k: v for k, v in wanted.items() if k not in state.user_assigned}
            to_remove = {k for k in unwanted if k in state.user_assigned} - set(wanted)
            if not to_add and not to_remove:
                return IdentityChangeResult(state, dropped, writes)
            body = _patch_body(state, to_add, to_remove)
            writes += 1
            try:
                response = await self._request("PATCH", machine, operation="patch", body=body)
                final = await self._finish(machine, response)
            except AzureError as err:
                named = _refused_identities(err, to_add)
                if not named:
                    raise
                for key in named:
                    _log.warning("ARM refused identity %s on %s: %s", key, machine, err.code)
                    dropped[key] = err
                    wanted.pop(key, None)
                continue
            if final is None:  # the operation gave no body: we know what we asked for
                user = {k: v for k, v in state.user_assigned.items() if k not in to_remove}
                original = {k: v for k, v in state.original_ids.items() if k not in to_remove}
                user.update(dict.fromkeys(to_add, ""))
                original.update(to_add)
                final = MachineIdentities(machine, state.system_assigned, user, original)
            _log.info(
                "ARM identities of %s: added %d, removed %d", machine, len(to_add), len(to_remove)
            )
            return IdentityChangeResult(final, dropped, writes)
        raise AzureForbiddenError(
            f"{machine}: ARM kept refusing identities after {self.max_identity_retries} retries",
            code="FailedIdentityOperation",
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def _check_throttle(self, subscription: str) -> None:
        until = self._blocked_until.get(subscription)
        if until is None:
            return
        left = until - self._clock()
        if left > 0:
            raise AzureThrottledError(
                f"subscription {subscription} is throttled for {left:.1f}s more",
                retry_after=left,
                status_code=429,
                code="TooManyRequests",
            )
        del self._blocked_until[subscription]

    async def _headers(self) -> dict[str, str]:
        try:
            token = await self.credential.get_token(self.cloud.scope)
        except Exception as err:  # azure-core raises ClientAuthenticationError and friends
            raise AzureAuthenticationError(
                f"could not get a token for {self.cloud.scope}: {type(err).__name__}"
            ) from err
        return {"Authorization": f"Bearer {token.token}", "Accept": "application/json"}

    async def _request(
        self,
        method: str,
        target: str,
        *,
        operation: str,
        body: Any = None,
        absolute: bool = False,
    ) -> httpx.Response:
        subscription = _subscription(target)
        self._check_throttle(subscription)
        url = target if absolute else f"{self.cloud.resource_manager}{target}"
        params = None if absolute else {"api-version": self.api_version}
        headers = await self._headers()
        started = self._clock()
        self.requests += 1
        try:
            response = await self._http.request(
                method, url, params=params, json=body, headers=headers
            )
        except httpx.HTTPError as err:
            self._observe(operation, 0, type(err).__name__, started)
            raise AzureUnavailableError(f"{method} {target}: {type(err).__name__}") from err
        if response.status_code >= 400:
            error = _error(response, f"{method} {_short(target)}")
            self._observe(operation, response.status_code, error.code, started)
            if isinstance(error, AzureThrottledError):
                wait = error.retry_after or self.default_throttle
                self._blocked_until[subscription] = self._clock() + wait
            raise error
        self._observe(operation, response.status_code, "", started)
        return response

    def _observe(self, operation: str, status: int, code: str, started: float) -> None:
        if self.observer is not None:
            self.observer(operation, status, code, max(0.0, self._clock() - started))

    async def _finish(self, machine: str, response: httpx.Response) -> MachineIdentities | None:
        """Follow a long-running operation to its end; the final identities if known."""
        async_url = response.headers.get("Azure-AsyncOperation")
        location = response.headers.get("Location")
        if response.status_code in (200, 201) and not async_url:
            return _read_identities(machine, response.json()) if response.content else None
        if not async_url and not location:
            return None  # 202/204 without a way to follow: accepted, nothing more to learn
        accepted = self._clock()
        deadline = accepted + self.operation_timeout
        current = response
        while True:
            await self._sleep(_retry_after(current.headers) or self.poll_interval)
            if self._clock() > deadline:
                raise AzureUnavailableError(
                    f"{machine}: the operation did not finish in {self.operation_timeout:.0f}s"
                )
            if async_url:
                current = await self._request("GET", async_url, operation="poll", absolute=True)
                status = str(current.json().get("status", "")).lower()
                if status not in _TERMINAL:
                    continue
                if status == "succeeded":
                    self._observe("operation", current.status_code, "", accepted)
                    return None
                # A failed operation is a 200 poll: observed on its own, by its error code, or
                # the error metrics would never see writes that ARM accepted and then failed.
                error = _operation_error(current.json(), machine)
                self._observe("operation", current.status_code, error.code, accepted)
                raise error
            assert location is not None
            current = await self._request("GET", location, operation="poll", absolute=True)
            if current.status_code == 202:
                continue
            self._observe("operation", current.status_code, "", accepted)
            if current.content:
                return _read_identities(machine, current.json())
            return None


# -- wire helpers ----------------------------------------------------------------------------


def _subscription(target: str) -> str:
    parts = normalize_id(target.split("?", 1)[0].split("://", 1)[-1]).split("/")
    try:
        return parts[parts.index("subscriptions") + 1]
    except (ValueError, IndexError):
        return ""


def _short(target: str) -> str:
    return target.split("?", 1)[0]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _read_identities(machine: str, document: Any) -> MachineIdentities:
    identity = document.get("identity") if isinstance(document, dict) else None
    if not isinstance(identity, dict):
        return MachineIdentities(machine)
    kind = str(identity.get("type") or "None").lower()
    users = identity.get("userAssignedIdentities") or {}
    user_assigned: dict[str, str] = {}
    original: dict[str, str] = {}
    for rid, value in users.items():
        key = normalize_id(rid)
        user_assigned[key] = str((value or {}).get("clientId") or "").lower()
        original[key] = rid
    return MachineIdentities(machine, "systemassigned" in kind, user_assigned, original)


def _patch_body(
    state: MachineIdentities, to_add: Mapping[str, str], to_remove: set[str]
) -> dict[str, Any]:
    remaining = (set(state.user_assigned) - to_remove) | set(to_add)
    kinds = (["SystemAssigned"] if state.system_assigned else []) + (
        ["UserAssigned"] if remaining else []
    )
    identity: dict[str, Any] = {"type": ", ".join(kinds) or "None"}
    if remaining:
        changes: dict[str, Any] = {rid: {} for rid in to_add.values()}
        changes.update({state.original_ids.get(key, key): None for key in to_remove})
        identity["userAssignedIdentities"] = changes
    return {"identity": identity}


def _error(response: httpx.Response, what: str) -> AzureError:
    code, message = "", ""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            message = str(error.get("message") or "")
    except ValueError:
        pass
    status = response.status_code
    text = f"{what}: {status} {code}: {message}".rstrip(": ")
    if status == 429:
        retry = _retry_after(response.headers)
        return AzureThrottledError(
            text, retry_after=retry if retry is not None else 0.0, status_code=status, code=code
        )
    if status == 401:
        return AzureAuthenticationError(text, status_code=status, code=code)
    if status == 403:
        return AzureForbiddenError(text, status_code=status, code=code)
    if status == 404:
        return AzureNotFoundError(text, status_code=status, code=code)
    if status >= 500 or status == 408:
        return AzureUnavailableError(text, status_code=status, code=code)
    return AzureError(text, status_code=status, code=code)


def _operation_error(body: Any, machine: str) -> AzureError:
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "OperationFailed")
    message = str(error.get("message") or "")
    text = f"{machine}: the operation failed: {code}: {message}"
    if code == "LinkedAuthorizationFailed":
        return AzureForbiddenError(text, status_code=200, code=code)
    if code in ("InternalServerError", "ServiceUnavailable", "OperationFailed"):
        return AzureUnavailableError(text, status_code=200, code=code)
    return AzureError(text, status_code=200, code=code)


def _refused_identities(err: AzureError, to_add: Mapping[str, str]) -> set[str]:
    """Identities (normalized) that ARM named when refusing a write, among those added."""
    if err.code not in _RETRYABLE_IDENTITY_CODES:
        return set()
    named = {normalize_id(m) for m in _IDENTITY_ID.findall(str(err))}
    refused = named & set(to_add)
    if not refused and len(to_add) == 1 and err.code == "LinkedAuthorizationFailed":
        refused = set(to_add)  # one candidate: the error can only be about it
    return refused
