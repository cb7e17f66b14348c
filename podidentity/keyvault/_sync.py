"""The synchronous I/O layer: SDK clients, a thread pool, and the public one-call functions."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import ManagedIdentityCredential, WorkloadIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient
from urllib3.util.retry import Retry

from podidentity.keyvault import _core
from podidentity.keyvault._core import (
    PAGE_SIZE,
    FetchResult,
    FetchSettings,
    GetKey,
    GetSecret,
    Listed,
    ListProperties,
    ListSecretVersions,
    ObjectFailure,
    Outcome,
    Request,
)
from podidentity.keyvault._credential import choose_credential
from podidentity.keyvault._spec import VaultObject
from podidentity.keyvault._throttle import ThrottleGate, retry_after

__all__ = ["Reader", "fetch", "get_secret", "make_credential"]

logger = logging.getLogger("podidentity.keyvault")


def make_credential(
    *, client_id: str | None = None, resource_id: str | None = None
) -> ManagedIdentityCredential | WorkloadIdentityCredential:
    """The credential a pod should use (see :func:`~podidentity.keyvault.choose_credential`).

    The caller owns it and closes it.
    """
    choice = choose_credential(client_id=client_id, resource_id=resource_id)
    if choice.kind == "workload":
        return WorkloadIdentityCredential(**choice.kwargs)
    return ManagedIdentityCredential(**choice.kwargs)


def _transport(settings: FetchSettings) -> RequestsTransport:
    # requests keeps 10 connections per host by default; with more threads than that each
    # extra request would open (and throw away) a new tunnel and TLS session.
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=settings.concurrency,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # The client builds no transport of its own when given one, so the connection settings
    # among ``client_kwargs`` (``connection_verify``, timeouts, ...) must be given to ours.
    connection = {
        k: v
        for k, v in settings.client_kwargs.items()
        if k.startswith("connection_") or k == "read_timeout"
    }
    return RequestsTransport(session=session, session_owner=True, **connection)


class _GatePolicy(HTTPPolicy):  # type: ignore[type-arg]
    """Waits while the vault throttles us; notes every 429 (see ``ThrottleGate``)."""

    def __init__(self, gate: ThrottleGate) -> None:
        super().__init__()
        self._gate = gate

    def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        delay = self._gate.delay()
        if delay:
            time.sleep(delay)
        response = self.next.send(request)
        if response.http_response.status_code == 429:
            self._gate.throttled(retry_after(response.http_response.headers))
        return response


class Reader:
    """Sends the core's requests with one ``SecretClient`` (and ``KeyClient``) per vault.

    Use as a context manager; it closes the clients and the credential it created (never one
    the caller passed).
    """

    def __init__(
        self, credential: TokenCredential | None = None, settings: FetchSettings | None = None
    ) -> None:
        self.settings = settings or FetchSettings()
        self._owns_credential = credential is None
        self._credential: Any = credential if credential is not None else make_credential()
        self._lock = threading.Lock()
        self._secrets: dict[str, SecretClient] = {}
        self._keys: dict[str, KeyClient] = {}
        self._gates: dict[str, ThrottleGate] = {}

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every client, and the credential if this reader created it."""
        with self._lock:
            clients: list[Any] = [*self._secrets.values(), *self._keys.values()]
            self._secrets.clear()
            self._keys.clear()
        for client in clients:
            client.close()
        if self._owns_credential:
            self._credential.close()

    def _client_kwargs(self, url: str) -> dict[str, Any]:
        kwargs = self.settings.sdk_kwargs()
        if "transport" not in kwargs:
            kwargs["transport"] = _transport(self.settings)
        gate = self._gates.setdefault(url, ThrottleGate())  # secrets and keys share it
        kwargs["per_retry_policies"] = [*kwargs.get("per_retry_policies", ()), _GatePolicy(gate)]
        return kwargs

    def _secret_client(self, url: str) -> SecretClient:
        with self._lock:
            client = self._secrets.get(url)
            if client is None:
                client = SecretClient(url, self._credential, **self._client_kwargs(url))
                self._secrets[url] = client
            return client

    def _key_client(self, url: str) -> KeyClient:
        with self._lock:
            client = self._keys.get(url)
            if client is None:
                client = KeyClient(url, self._credential, **self._client_kwargs(url))
                self._keys[url] = client
            return client

    def execute(self, request: Request) -> Any:
        """Send one request; return the core's record for its answer."""
        if isinstance(request, GetSecret):
            secret = self._secret_client(request.vault_url).get_secret(
                request.name, request.version
            )
            return _core.secret_record(secret)
        if isinstance(request, ListSecretVersions):
            pages = self._secret_client(request.vault_url).list_properties_of_secret_versions(
                request.name, max_page_size=PAGE_SIZE
            )
            return [_core.listed(p) for p in pages]
        if isinstance(request, GetKey):
            key = self._key_client(request.vault_url).get_key(request.name, request.version)
            return _core.key_record(key)
        if request.kind == "keys":
            items: Iterable[Any] = self._key_client(request.vault_url).list_properties_of_keys(
                max_page_size=PAGE_SIZE
            )
        else:
            items = self._secret_client(request.vault_url).list_properties_of_secrets(
                max_page_size=PAGE_SIZE
            )
        return [_core.listed(p) for p in items]

    def _run(self, obj: VaultObject) -> Outcome | ObjectFailure:
        url = self.settings.url(obj)
        flow = _core.object_flow(obj, url)
        try:
            request = next(flow)
            while True:
                request = flow.send(self.execute(request))
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        except Exception as exc:  # every failure is reported per object
            return _core.failure(obj, url, exc)

    def fetch(self, objects: Iterable[VaultObject]) -> FetchResult:
        """Fetch every object concurrently; failures are in the result, never raised."""
        checked = _core.prepare(objects, self.settings)
        results = self._map(self._run, checked)
        outcomes = [r for r in results if isinstance(r, Outcome)]
        failures = [r for r in results if isinstance(r, ObjectFailure)]
        return _core.assemble(checked, outcomes, failures, self.settings)

    def list_properties(
        self, requests_: Sequence[ListProperties]
    ) -> dict[ListProperties, list[Listed] | None]:
        """Run listings concurrently; a listing that fails maps to ``None`` (logged)."""

        def one(request: ListProperties) -> list[Listed] | None:
            try:
                listed: list[Listed] = self.execute(request)
            except Exception as exc:  # a failed listing falls back to GETs
                logger.warning(
                    "cannot list %s of %s (%s); fetching its objects one by one",
                    request.kind,
                    request.vault_url,
                    _core.azure_error("listing", request.vault_url, exc),
                )
                return None
            return listed

        return dict(zip(requests_, self._map(one, requests_), strict=True))

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        workers = min(self.settings.concurrency, len(items))
        with ThreadPoolExecutor(workers, thread_name_prefix="podidentity-keyvault") as pool:
            return list(pool.map(fn, items))


def fetch(
    objects: Iterable[VaultObject],
    *,
    credential: TokenCredential | None = None,
    settings: FetchSettings | None = None,
    partial: bool = False,
) -> FetchResult:
    """Fetch Key Vault objects concurrently and return their outputs by alias.

    Args:
        objects: what to read (see :class:`VaultObject` and :func:`load_spec`).
        credential: any azure-core ``TokenCredential``; by default the pod's own (workload
            identity if its environment is set, else managed identity), closed afterwards.
        settings: vault suffix, concurrency and retries.
        partial: return a result with ``failures`` instead of raising when objects fail.

    Raises:
        KeyVaultFetchError: some objects failed (unless ``partial``); its ``result`` holds the
            others and ``failures`` names each failed object, its vault, status and message.
        ValidationError: the objects are invalid (two on one alias, a bad vault name).
    """
    with Reader(credential, settings) as reader:
        result = reader.fetch(objects)
    if not partial:
        result.raise_for_failures()
    return result


def get_secret(
    vault: str,
    name: str,
    *,
    version: str | None = None,
    credential: TokenCredential | None = None,
    settings: FetchSettings | None = None,
) -> str:
    """Read one secret's value with the pod's identity.

    Args:
        vault: the vault's name (``orders-kv``) or URL.
        name: the secret's name.
        version: a version id; the latest by default.
        credential: any azure-core ``TokenCredential``; by default the pod's own.
        settings: vault suffix and retries.

    Raises:
        AzureNotFoundError: no such vault, secret or version.
        AzureForbiddenError: the identity may not read it, or the secret is disabled.
        AzureAuthenticationError: no token could be had for the identity.
        AzureError: another answer from Key Vault (throttled after retries, unavailable).
    """
    obj = VaultObject(vault=vault, name=name, version=version)
    with Reader(credential, settings) as reader:
        result = reader.fetch([obj])
    if result.failures:
        raise result.failures[0].error
    return result.text(obj.output_name)
