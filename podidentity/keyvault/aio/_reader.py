"""The asyncio I/O layer: aio SDK clients and a semaphore; the logic is the shared core's."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport
from azure.identity.aio import ManagedIdentityCredential, WorkloadIdentityCredential
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.secrets.aio import SecretClient

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
    """The async credential a pod should use (see ``choose_credential``); the caller closes it."""
    choice = choose_credential(client_id=client_id, resource_id=resource_id)
    if choice.kind == "workload":
        return WorkloadIdentityCredential(**choice.kwargs)
    return ManagedIdentityCredential(**choice.kwargs)


def _transport(settings: FetchSettings) -> AioHttpTransport:
    """A transport whose session verifies with one SSL context, built once.

    Given ``connection_verify`` (a CA file), azure-core's aiohttp transport builds a new SSL
    context for every request, and aiohttp pools connections per context: every request would
    open a new connection and TLS session. The context goes on the connector instead.
    """
    verify = settings.client_kwargs.get("connection_verify", True)
    context: ssl.SSLContext | bool
    if isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    elif isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify:
        # Built now, not aiohttp's context from import time: the default verify paths (and
        # SSL_CERT_FILE) are read when the context is made, as the sync client reads them.
        context = ssl.create_default_context()
    else:
        context = False
    cert = settings.client_kwargs.get("connection_cert")
    if cert is not None:
        context = context if isinstance(context, ssl.SSLContext) else ssl.create_default_context()
        if isinstance(cert, tuple):
            context.load_cert_chain(*cert)
        else:
            context.load_cert_chain(cert)
    connector = aiohttp.TCPConnector(ssl=context, limit=settings.concurrency)
    session = aiohttp.ClientSession(connector=connector, trust_env=True)
    return AioHttpTransport(session=session, session_owner=True)


class _GatePolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """Waits while the vault throttles us; notes every 429 (see ``ThrottleGate``)."""

    def __init__(self, gate: ThrottleGate) -> None:
        super().__init__()
        self._gate = gate

    async def send(self, request: PipelineRequest) -> PipelineResponse:  # type: ignore[type-arg]
        delay = self._gate.delay()
        if delay:
            await asyncio.sleep(delay)
        response = await self.next.send(request)
        if response.http_response.status_code == 429:
            self._gate.throttled(retry_after(response.http_response.headers))
        return response


class Reader:
    """Sends the core's requests with one aio ``SecretClient`` (and ``KeyClient``) per vault.

    Use as an async context manager; it closes the clients and the credential it created.
    """

    def __init__(
        self, credential: AsyncTokenCredential | None = None, settings: FetchSettings | None = None
    ) -> None:
        self.settings = settings or FetchSettings()
        self._owns_credential = credential is None
        self._credential: Any = credential if credential is not None else make_credential()
        self._secrets: dict[str, SecretClient] = {}
        self._keys: dict[str, KeyClient] = {}
        self._gates: dict[str, ThrottleGate] = {}
        self._semaphore = asyncio.Semaphore(self.settings.concurrency)

    async def __aenter__(self) -> Reader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every client, and the credential if this reader created it."""
        clients: list[Any] = [*self._secrets.values(), *self._keys.values()]
        self._secrets.clear()
        self._keys.clear()
        for client in clients:
            await client.close()
        if self._owns_credential:
            await self._credential.close()

    def _client_kwargs(self, url: str) -> dict[str, Any]:
        kwargs = self.settings.sdk_kwargs()
        if "transport" not in kwargs:
            kwargs.pop("connection_verify", None)  # on the transport's connector instead
            kwargs.pop("connection_cert", None)
            kwargs["transport"] = _transport(self.settings)
        gate = self._gates.setdefault(url, ThrottleGate())  # secrets and keys share it
        kwargs["per_retry_policies"] = [*kwargs.get("per_retry_policies", ()), _GatePolicy(gate)]
        return kwargs

    def _secret_client(self, url: str) -> SecretClient:
        client = self._secrets.get(url)
        if client is None:
            client = SecretClient(url, self._credential, **self._client_kwargs(url))
            self._secrets[url] = client
        return client

    def _key_client(self, url: str) -> KeyClient:
        client = self._keys.get(url)
        if client is None:
            client = KeyClient(url, self._credential, **self._client_kwargs(url))
            self._keys[url] = client
        return client

    async def execute(self, request: Request) -> Any:
        """Send one request (holding a concurrency slot); return the core's record."""
        async with self._semaphore:
            if isinstance(request, GetSecret):
                secret = await self._secret_client(request.vault_url).get_secret(
                    request.name, request.version
                )
                return _core.secret_record(secret)
            if isinstance(request, ListSecretVersions):
                pages = self._secret_client(request.vault_url).list_properties_of_secret_versions(
                    request.name, max_page_size=PAGE_SIZE
                )
                return [_core.listed(p) async for p in pages]
            if isinstance(request, GetKey):
                key = await self._key_client(request.vault_url).get_key(
                    request.name, request.version
                )
                return _core.key_record(key)
            if request.kind == "keys":
                items: Any = self._key_client(request.vault_url).list_properties_of_keys(
                    max_page_size=PAGE_SIZE
                )
            else:
                items = self._secret_client(request.vault_url).list_properties_of_secrets(
                    max_page_size=PAGE_SIZE
                )
            return [_core.listed(p) async for p in items]

    async def _run(self, obj: VaultObject) -> Outcome | ObjectFailure:
        url = self.settings.url(obj)
        flow = _core.object_flow(obj, url)
        try:
            request = next(flow)
            while True:
                request = flow.send(await self.execute(request))
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        except Exception as exc:  # every failure is reported per object
            return _core.failure(obj, url, exc)

    async def fetch(self, objects: Iterable[VaultObject]) -> FetchResult:
        """Fetch every object concurrently; failures are in the result, never raised."""
        checked = _core.prepare(objects, self.settings)
        results = await asyncio.gather(*(self._run(obj) for obj in checked))
        outcomes = [r for r in results if isinstance(r, Outcome)]
        failures = [r for r in results if isinstance(r, ObjectFailure)]
        return _core.assemble(checked, outcomes, failures, self.settings)

    async def list_properties(
        self, requests: Sequence[ListProperties]
    ) -> dict[ListProperties, list[Listed] | None]:
        """Run listings concurrently; a listing that fails maps to ``None`` (logged)."""

        async def one(request: ListProperties) -> list[Listed] | None:
            try:
                listed: list[Listed] = await self.execute(request)
            except Exception as exc:  # a failed listing falls back to GETs
                logger.warning(
                    "cannot list %s of %s (%s); fetching its objects one by one",
                    request.kind,
                    request.vault_url,
                    _core.azure_error("listing", request.vault_url, exc),
                )
                return None
            return listed

        results = await asyncio.gather(*(one(r) for r in requests))
        return dict(zip(requests, results, strict=True))


async def fetch(
    objects: Iterable[VaultObject],
    *,
    credential: AsyncTokenCredential | None = None,
    settings: FetchSettings | None = None,
    partial: bool = False,
) -> FetchResult:
    """Fetch Key Vault objects concurrently; the async twin of ``podidentity.keyvault.fetch``.

    Raises:
        KeyVaultFetchError: some objects failed (unless ``partial``); ``result`` keeps the rest.
        ValidationError: the objects are invalid.
    """
    async with Reader(credential, settings) as reader:
        result = await reader.fetch(objects)
    if not partial:
        result.raise_for_failures()
    return result


async def get_secret(
    vault: str,
    name: str,
    *,
    version: str | None = None,
    credential: AsyncTokenCredential | None = None,
    settings: FetchSettings | None = None,
) -> str:
    """Read one secret's value; the async twin of ``podidentity.keyvault.get_secret``.

    Raises:
        AzureNotFoundError, AzureForbiddenError, AzureAuthenticationError, AzureError: as the
            sync function.
    """
    obj = VaultObject(vault=vault, name=name, version=version)
    async with Reader(credential, settings) as reader:
        result = await reader.fetch([obj])
    if result.failures:
        raise result.failures[0].error
    return result.text(obj.output_name)
