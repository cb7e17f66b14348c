"""The sans-I/O core shared by the sync and the async Key Vault helpers.

Like azure-identity's client base classes, everything that is not I/O lives here: which
requests an object needs (a generator per object, driven by either an I/O layer), how
answers become outputs, which errors mean what, which objects changed since the last poll,
and how clients are configured. ``_sync`` and ``aio`` only send the requests.

An object's *flow* is a generator that yields request records (:class:`GetSecret`,
:class:`ListSecretVersions`, :class:`GetKey`) and receives the answers as plain records
(:class:`SecretRecord`, a list of :class:`Listed`, :class:`KeyRecord`); it returns an
:class:`Outcome`. Drivers catch exceptions around the whole flow and turn them into an
:class:`ObjectFailure` with :func:`failure`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
from azure.core import exceptions as azure_exceptions

from podidentity.errors import (
    AzureAuthenticationError,
    AzureError,
    AzureForbiddenError,
    AzureNotFoundError,
    AzureThrottledError,
    AzureUnavailableError,
    KeyVaultFetchError,
    PodIdentityError,
    ValidationError,
)
from podidentity.keyvault._convert import (
    certificate_outputs,
    decode_secret,
    public_key_pem,
    split_values,
)
from podidentity.keyvault._spec import VaultObject, check_unique_aliases, vault_url
from podidentity.keyvault._throttle import retry_after

__all__ = [
    "PAGE_SIZE",
    "FetchResult",
    "FetchSettings",
    "GetKey",
    "GetSecret",
    "ListProperties",
    "ListSecretVersions",
    "Listed",
    "ObjectFailure",
    "ObjectState",
    "Outcome",
    "Output",
    "Request",
    "assemble",
    "azure_error",
    "failure",
    "listing_requests",
    "object_flow",
    "prepare",
    "stale_objects",
]

#: Key Vault's largest page; the service's default too.
PAGE_SIZE = 25


@attrs.frozen(kw_only=True)
class FetchSettings:
    """How the Key Vault helper talks to Key Vault.

    Attributes:
        vault_suffix: the DNS suffix vault names are completed with (``vault.azure.net``;
            ``vault.azure.cn``, ``vault.usgovcloudapi.net`` in other clouds).
        concurrency: at most this many requests in flight at once (over all vaults).
        retry_total: retries per request on 408, 429, 5xx and connection errors; azure-core's
            retry policy waits what ``Retry-After`` says, else backs off exponentially.
        retry_backoff_factor: the first backoff, in seconds (doubling each retry).
        retry_backoff_max: the longest backoff, in seconds.
        client_kwargs: extra keyword arguments for every SDK client (``connection_verify``,
            ``proxies``, ...).
    """

    vault_suffix: str = "vault.azure.net"
    concurrency: int = attrs.field(default=16)
    retry_total: int = 6
    retry_backoff_factor: float = 0.8
    retry_backoff_max: float = 60.0
    client_kwargs: Mapping[str, Any] = attrs.field(factory=dict)

    @concurrency.validator
    def _check_concurrency(self, _: Any, value: int) -> None:
        if value < 1:
            raise ValidationError("concurrency", "must be at least 1", value, obj="FetchSettings")

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for SDK clients: the retry policy, then ``client_kwargs``."""
        return {
            "retry_total": self.retry_total,
            "retry_backoff_factor": self.retry_backoff_factor,
            "retry_backoff_max": self.retry_backoff_max,
            "retry_mode": "exponential",
            **self.client_kwargs,
        }

    def url(self, obj: VaultObject) -> str:
        """The URL of the object's vault."""
        return vault_url(obj.vault, self.vault_suffix, obj=obj.label)


# -- requests and answers ----------------------------------------------------------------------


@attrs.frozen
class GetSecret:
    """``GET /secrets/{name}[/{version}]``."""

    vault_url: str
    name: str
    version: str | None = None


@attrs.frozen
class ListSecretVersions:
    """``GET /secrets/{name}/versions`` (all pages)."""

    vault_url: str
    name: str


@attrs.frozen
class GetKey:
    """``GET /keys/{name}[/{version}]``."""

    vault_url: str
    name: str
    version: str | None = None


@attrs.frozen
class ListProperties:
    """``GET /secrets`` or ``GET /keys`` (all pages): the latest version of every object."""

    vault_url: str
    kind: Literal["secrets", "keys"]


Request = GetSecret | ListSecretVersions | GetKey | ListProperties


@attrs.frozen(repr=False)
class SecretRecord:
    """A secret version as fetched (its value is never shown in a repr)."""

    value: str
    version: str
    content_type: str | None
    updated: float | None

    def __repr__(self) -> str:
        return f"SecretRecord(value='****', version={self.version!r})"


@attrs.frozen
class Listed:
    """One entry of a listing: no value, only what tells versions apart."""

    name: str
    version: str
    updated: float | None
    created: float | None
    enabled: bool


@attrs.frozen
class KeyRecord:
    """A key version: its public JSON web key."""

    jwk: Mapping[str, Any]
    version: str
    updated: float | None


def _epoch(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def secret_record(secret: Any) -> SecretRecord:
    """A :class:`SecretRecord` from the SDK's ``KeyVaultSecret``."""
    props = secret.properties
    return SecretRecord(
        value=secret.value or "",
        version=props.version or "",
        content_type=props.content_type,
        updated=_epoch(props.updated_on),
    )


def listed(props: Any) -> Listed:
    """A :class:`Listed` from the SDK's ``SecretProperties`` or ``KeyProperties``."""
    return Listed(
        name=props.name or "",
        version=props.version or "",
        updated=_epoch(props.updated_on),
        created=_epoch(props.created_on),
        enabled=props.enabled is not False,
    )


def key_record(key: Any) -> KeyRecord:
    """A :class:`KeyRecord` from the SDK's ``KeyVaultKey``."""
    jwk = key.key
    fields = {name: getattr(jwk, name, None) for name in ("kty", "n", "e", "crv", "x", "y")}
    for name in ("kty", "crv"):  # the SDK's enums: keep their wire value
        fields[name] = getattr(fields[name], "value", fields[name])
    return KeyRecord(
        jwk=fields, version=key.properties.version or "", updated=_epoch(key.properties.updated_on)
    )


# -- outcomes and results ----------------------------------------------------------------------


@attrs.frozen
class ObjectState:
    """What a watcher remembers of an object: the version delivered and its update time."""

    version: str
    updated: float | None


@attrs.frozen(repr=False)
class Outcome:
    """An object fetched and converted: its outputs and the version they came from."""

    object: VaultObject
    outputs: Mapping[str, bytes]
    state: ObjectState


@attrs.frozen(repr=False)
class Output:
    """One delivered value: a file, an environment variable or a Secret key.

    Attributes:
        name: the output's name (the alias, ``<alias>/<n>`` for version history, a key of a
            split secret).
        data: the bytes (never shown in a repr).
        mode: the file mode to write it with.
        object: the object it came from.
        version: the version of the object it came from.
    """

    name: str
    data: bytes
    mode: int
    object: VaultObject
    version: str

    @property
    def text(self) -> str:
        """The value as UTF-8 text.

        Raises:
            ValidationError: the bytes are not UTF-8 (a PFX, a decoded base64 value).
        """
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(
                "alias", f"output {self.name!r} is binary, not UTF-8 text", obj=self.object.label
            ) from None

    def __repr__(self) -> str:
        return (
            f"Output(name={self.name!r}, data=<{len(self.data)} bytes ****>, "
            f"mode={self.mode:#o}, version={self.version!r})"
        )


@attrs.frozen
class ObjectFailure:
    """Why one object could not be delivered.

    Attributes:
        object: the object.
        vault: the vault's URL.
        status_code: the HTTP status (0 without an answer, or for bad content).
        code: Key Vault's error code (``SecretNotFound``, ``Forbidden``, ``SecretDisabled``,
            ``Throttled``, ...) or a podidentity one (``InvalidContent``, ``Unreachable``).
        message: what went wrong, never the value.
        error: the typed error (``AzureNotFoundError``, ``AzureForbiddenError``,
            ``AzureThrottledError``, ``AzureUnavailableError``, ``ValidationError``, ...).
    """

    object: VaultObject
    vault: str
    status_code: int
    code: str
    message: str
    error: PodIdentityError = attrs.field(eq=False)

    def __str__(self) -> str:
        return str(self.error)


@attrs.frozen(repr=False)
class FetchResult(Mapping[str, Output]):
    """What a fetch delivered: outputs by name, and a failure per object that failed.

    A ``Mapping`` from output name (alias) to :class:`Output`; ``result.text("db-password")``
    is the value as text. Its repr lists names, never values.
    """

    outputs: Mapping[str, Output]
    failures: tuple[ObjectFailure, ...] = ()
    states: Mapping[VaultObject, ObjectState] = attrs.field(factory=dict)

    def __getitem__(self, name: str) -> Output:
        return self.outputs[name]

    def __iter__(self) -> Any:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def text(self, name: str) -> str:
        """The output ``name`` as UTF-8 text."""
        return self.outputs[name].text

    @property
    def ok(self) -> bool:
        """True when every object was delivered."""
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raise :class:`~podidentity.errors.KeyVaultFetchError` if any object failed."""
        if self.failures:
            lines = "; ".join(str(f) for f in self.failures)
            count = len(self.failures)
            raise KeyVaultFetchError(
                f"{count} Key Vault object{'s' if count > 1 else ''} failed: {lines}",
                failures=self.failures,
                result=self,
            )

    def __repr__(self) -> str:
        failed = [f.object.label for f in self.failures]
        return f"FetchResult(outputs={sorted(self.outputs)}, failures={failed})"


# -- flows --------------------------------------------------------------------------------------

Flow = Generator[Request, Any, Outcome]


def object_flow(obj: VaultObject, url: str) -> Flow:
    """The requests one object needs, and its outcome from their answers."""
    if obj.type == "key":
        key: KeyRecord = yield GetKey(url, obj.name, obj.version)
        return Outcome(
            obj,
            {obj.output_name: public_key_pem(obj, key.jwk)},
            ObjectState(key.version, key.updated),
        )
    if obj.version_history > 1:
        versions: list[Listed] = yield ListSecretVersions(url, obj.name)
        chosen = _history(obj, versions)
        outputs: dict[str, bytes] = {}
        for index, entry in enumerate(chosen):
            record: SecretRecord = yield GetSecret(url, obj.name, entry.version)
            outputs[f"{obj.output_name}/{index}"] = _convert(obj, record)[obj.output_name]
        newest = chosen[0]
        return Outcome(obj, outputs, ObjectState(newest.version, newest.updated))
    secret: SecretRecord = yield GetSecret(url, obj.name, obj.version)
    return Outcome(obj, _convert(obj, secret), ObjectState(secret.version, secret.updated))


def _history(obj: VaultObject, versions: Sequence[Listed]) -> list[Listed]:
    enabled = sorted(
        (v for v in versions if v.enabled),
        key=lambda v: (v.created or 0, v.updated or 0),
        reverse=True,
    )
    start = 0
    if obj.version is not None:
        wanted = obj.version.lower()
        start = next((i for i, v in enumerate(enabled) if v.version.lower() == wanted), -1)
        if start < 0:
            raise AzureNotFoundError(
                f"{obj.label}: 404 SecretNotFound: version {obj.version} is not an enabled "
                "version of the secret",
                status_code=404,
                code="SecretNotFound",
            )
    chosen = enabled[start : start + obj.version_history]
    if not chosen:
        raise AzureNotFoundError(
            f"{obj.label}: 404 SecretNotFound: the secret has no enabled version",
            status_code=404,
            code="SecretNotFound",
        )
    return chosen


def _convert(obj: VaultObject, record: SecretRecord) -> dict[str, bytes]:
    if obj.type == "certificate":
        return certificate_outputs(obj, record.value, record.content_type)
    if obj.split is not None:
        return split_values(obj, record.value)
    return {obj.output_name: decode_secret(obj, record.value)}


def assemble(
    objects: Sequence[VaultObject],
    outcomes: Iterable[Outcome],
    failures: Iterable[ObjectFailure],
    settings: FetchSettings,
) -> FetchResult:
    """The result of a fetch: outputs in the objects' order, collisions reported as failures."""
    by_object = {o.object: o for o in outcomes}
    failed = list(failures)
    outputs: dict[str, Output] = {}
    states: dict[VaultObject, ObjectState] = {}
    for obj in objects:
        outcome = by_object.get(obj)
        if outcome is None:
            continue
        clash = next((name for name in outcome.outputs if name in outputs), None)
        if clash is not None:
            error = ValidationError(
                "split",
                f"output {clash!r} is also an output of {outputs[clash].object.label}",
                obj=obj.label,
            )
            failed.append(_failure_from(obj, settings.url(obj), error, 0, "OutputConflict"))
            continue
        for name, data in outcome.outputs.items():
            outputs[name] = Output(
                name=name, data=data, mode=obj.mode, object=obj, version=outcome.state.version
            )
        states[obj] = outcome.state
    order = {obj: i for i, obj in enumerate(objects)}
    failed.sort(key=lambda f: order.get(f.object, len(order)))
    return FetchResult(outputs=outputs, failures=tuple(failed), states=states)


def prepare(objects: Iterable[VaultObject], settings: FetchSettings) -> tuple[VaultObject, ...]:
    """Check a list of objects before any request: types, URLs, unique aliases."""
    checked = tuple(objects)
    for obj in checked:
        if not isinstance(obj, VaultObject):
            raise ValidationError(
                "objects", "each object must be a VaultObject", type(obj).__name__
            )
        settings.url(obj)
    check_unique_aliases(checked)
    return checked


# -- errors -------------------------------------------------------------------------------------


def _failure_from(
    obj: VaultObject, url: str, error: PodIdentityError, status: int, code: str
) -> ObjectFailure:
    return ObjectFailure(
        object=obj, vault=url, status_code=status, code=code, message=str(error), error=error
    )


def failure(obj: VaultObject, url: str, exc: BaseException) -> ObjectFailure:
    """Map an exception raised while fetching ``obj`` to an :class:`ObjectFailure`."""
    if isinstance(exc, ValidationError):
        return _failure_from(obj, url, exc, 0, "InvalidContent")
    if isinstance(exc, AzureError):
        return _failure_from(obj, url, exc, exc.status_code, exc.code)
    error = azure_error(obj.label, url, exc)
    error.__cause__ = exc
    return _failure_from(obj, url, error, error.status_code, error.code)


def azure_error(label: str, url: str, exc: BaseException) -> AzureError:
    """A typed :class:`~podidentity.errors.AzureError` for an azure-core exception.

    The message names the object, the status and the service's code and message; azure-core's
    own rendering (which may include a response body) is not used.
    """
    if isinstance(exc, azure_exceptions.ClientAuthenticationError) and exc.response is None:
        return AzureAuthenticationError(
            f"{label}: no token for Key Vault: {_first_line(exc.message)}", code="CredentialError"
        )
    if isinstance(exc, azure_exceptions.HttpResponseError) and exc.response is not None:
        status = exc.status_code or 0
        code, message = _service_error(exc)
        text = f"{label}: {status} {code}: {message}".rstrip(": ")
        if status == 401:
            return AzureAuthenticationError(text, status_code=status, code=code)
        if status == 403:
            return AzureForbiddenError(text, status_code=status, code=code)
        if status == 404:
            return AzureNotFoundError(text, status_code=status, code=code)
        if status == 429:
            return AzureThrottledError(
                f"{text} (retries exhausted)",
                retry_after=retry_after(getattr(exc.response, "headers", {})),
                status_code=status,
                code=code,
            )
        if status >= 500 or status == 408:
            return AzureUnavailableError(text, status_code=status, code=code)
        return AzureError(text, status_code=status, code=code)
    if isinstance(
        exc, (azure_exceptions.ServiceRequestError, azure_exceptions.ServiceResponseError)
    ):
        return AzureUnavailableError(
            f"{label}: cannot reach {url}: {_first_line(str(exc))}; check the vault's name and "
            "the network (does the vault exist in this cloud?)",
            code="Unreachable",
        )
    return AzureError(f"{label}: {type(exc).__name__}: {_first_line(str(exc))}", code="Error")


def _service_error(exc: azure_exceptions.HttpResponseError) -> tuple[str, str]:
    error = exc.error
    if error is not None:
        inner = getattr(error, "innererror", None) or {}
        code = inner.get("code") if isinstance(inner, Mapping) else None
        return str(code or error.code or ""), _first_line(str(error.message or ""))
    reason = exc.reason or ""
    return reason.replace(" ", ""), reason


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


# -- rotation -------------------------------------------------------------------------------


def listing_requests(
    objects: Iterable[VaultObject],
    states: Mapping[VaultObject, ObjectState],
    settings: FetchSettings,
) -> list[ListProperties]:
    """The listings a poll needs: one per vault and kind with latest-tracking objects."""
    needed: dict[tuple[str, str], ListProperties] = {}
    for obj in objects:
        if obj in states and obj.tracks_latest:
            kind: Literal["secrets", "keys"] = "keys" if obj.type == "key" else "secrets"
            url = settings.url(obj)
            needed.setdefault((url, kind), ListProperties(url, kind))
    return list(needed.values())


def stale_objects(
    objects: Iterable[VaultObject],
    states: Mapping[VaultObject, ObjectState],
    listings: Mapping[ListProperties, Sequence[Listed] | None],
    settings: FetchSettings,
) -> list[VaultObject]:
    """The objects a poll must fetch again.

    Never delivered (or failed) before; a latest-tracking object whose listed version or update
    time differs from the delivered one, or that is no longer listed, or whose vault could not
    be listed (then it is fetched as a GET per object). A pinned version is never fetched again.
    """
    indexes: dict[ListProperties, dict[str, Listed] | None] = {
        request: (None if items is None else {i.name.lower(): i for i in items})
        for request, items in listings.items()
    }
    stale: list[VaultObject] = []
    for obj in objects:
        state = states.get(obj)
        if state is None:
            stale.append(obj)
            continue
        if not obj.tracks_latest:
            continue
        kind: Literal["secrets", "keys"] = "keys" if obj.type == "key" else "secrets"
        index = indexes.get(ListProperties(settings.url(obj), kind))
        item = None if index is None else index.get(obj.name.lower())
        # Key Vault lists the latest version's attributes under the bare name (no version id),
        # so a new version shows as a new update time; a version, when listed, is compared too.
        if (
            item is None
            or item.updated != state.updated
            or (item.version and item.version != state.version)
        ):
            stale.append(obj)
    return stale
