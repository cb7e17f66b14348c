"""The whole error tree of podidentity.

Every exception the library raises on purpose derives from :class:`PodIdentityError`, so
``except PodIdentityError`` catches all of them. Lower-level exceptions (from ``kubernetes``,
``azure-core``, ``httpx``) are wrapped with ``raise ... from err`` so the cause stays visible.

```text
PodIdentityError
├── ValidationError            bad input: names the object, the field path, the rule, the value
│                              (also a ValueError)
├── ConfigError                bad settings or environment (also a ValueError)
├── KubeError                  the Kubernetes API said no; carries code, reason, the Status body
│   ├── KubeNotFoundError           404 NotFound
│   ├── KubeConflictError           409 Conflict: stale resourceVersion, retry with a fresh read
│   │   └── KubeAlreadyExistsError  409 AlreadyExists: the name is taken
│   ├── KubeGoneError               410 Expired/Gone: re-list, the watch window has moved on
│   ├── KubeInvalidError            422 Invalid: the server rejected the object
│   ├── KubeForbiddenError          401/403: credentials missing or not allowed
│   └── KubeUnavailableError        429, 5xx, timeouts: transient, retry (see ``retry_after``)
├── AzureError                 an Azure endpoint (IMDS, Azure AD, ARM, Key Vault) said no
│   ├── AzureAuthenticationError    credentials were rejected: do not retry blindly
│   ├── AzureForbiddenError         authenticated, but not allowed (403, LinkedAuthorizationFailed)
│   ├── AzureNotFoundError          the resource, secret or identity does not exist
│   ├── IdentityNotAssignedError    IMDS does not (yet) have the identity on this VM / scale set
│   ├── AzureThrottledError         429: wait ``retry_after`` seconds
│   └── AzureUnavailableError       5xx, connection errors, timeouts: transient
├── KeyVaultFetchError         some Key Vault objects failed; ``failures`` names each object
│                              (vault, status, message) and ``result`` keeps what succeeded
├── ReconcileError             outcome of one reconcile step
│   ├── TemporaryReconcileError     try again after ``delay`` seconds
│   └── PermanentReconcileError     retrying will not help until the input changes
└── TokenRequestRefusedError   the node's token proxy refuses a caller's token request
    ├── BadTokenRequestError        the request is malformed (path, header, parameters)
    ├── CallerNotIdentifiedError    no single pod on this node is the caller (or its proof failed)
    ├── IdentityNotPermittedError   the calling pod has no such identity
    └── AssignmentPendingError      the pod's identity is not usable yet: see ``retry_after``
```

The token proxy maps these classes, and the Azure and Kubernetes ones, to HTTP answers in one
place (``podidentity.nmi``'s response module).

Errors never carry a token, a client secret, a certificate or a secret value in their message:
code that builds one from a server response passes only codes and descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AzureAuthenticationError",
    "AzureError",
    "AzureForbiddenError",
    "AzureNotFoundError",
    "AzureThrottledError",
    "AssignmentPendingError",
    "AzureUnavailableError",
    "BadTokenRequestError",
    "CallerNotIdentifiedError",
    "ConfigError",
    "IdentityNotAssignedError",
    "IdentityNotPermittedError",
    "KeyVaultFetchError",
    "KubeAlreadyExistsError",
    "KubeConflictError",
    "KubeError",
    "KubeForbiddenError",
    "KubeGoneError",
    "KubeInvalidError",
    "KubeNotFoundError",
    "KubeUnavailableError",
    "PermanentReconcileError",
    "PodIdentityError",
    "ReconcileError",
    "TemporaryReconcileError",
    "TokenRequestRefusedError",
    "ValidationError",
]


class PodIdentityError(Exception):
    """Root of every error that podidentity raises on purpose."""


class ValidationError(PodIdentityError, ValueError):
    """Input that does not have the structure the API requires.

    The message reads ``<Kind> <namespace>/<name>: <path>: <rule>, got <value>``, for example
    ``AzureIdentity default/x: spec.type: expected 0, 1, 2 or 3, got 7``. The parts are kept as
    attributes so that tools can point at the offending field.

    Attributes:
        path: dotted field path inside the object (``spec.type``, ``metadata.labels``); empty
            when the whole object is wrong.
        rule: what was expected, in words.
        value: the offending value (already shortened for display), or ``None``.
        obj: ``"<Kind> <namespace>/<name>"`` when known, else ``""``.
    """

    def __init__(self, path: str, rule: str, value: Any = None, *, obj: str = "") -> None:
        self.path = path
        self.rule = rule
        self.value = value
        self.obj = obj
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [p for p in (self.obj, self.path) if p]
        where = ": ".join(parts)
        got = "" if self.value is None else f", got {_short(self.value)}"
        return f"{where}: {self.rule}{got}" if where else f"{self.rule}{got}"

    def within(self, obj: str) -> ValidationError:
        """Return a copy of this error that names the object it was found in."""
        return ValidationError(self.path, self.rule, self.value, obj=obj)


class ConfigError(PodIdentityError, ValueError):
    """Settings, flags or environment that cannot work; the message says how to fix them."""


class KubeError(PodIdentityError):
    """The Kubernetes API answered with an error ``Status``.

    Attributes:
        code: the HTTP status code.
        reason: the ``Status.reason`` (``NotFound``, ``Conflict``, ``AlreadyExists``, ...).
        status: the decoded ``Status`` object, or an empty mapping.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        reason: str = "",
        status: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.status: Mapping[str, Any] = status or {}


class KubeNotFoundError(KubeError):
    """404: the object does not exist."""


class KubeConflictError(KubeError):
    """409 Conflict: the object changed since it was read; read it again and retry."""


class KubeAlreadyExistsError(KubeConflictError):
    """409 AlreadyExists: an object with that name exists."""


class KubeGoneError(KubeError):
    """410 Gone / Expired: the resourceVersion is older than the server keeps; re-list."""


class KubeInvalidError(KubeError):
    """422 Invalid: the server rejected the object; ``status['details']`` names the fields."""


class KubeForbiddenError(KubeError):
    """401 or 403: the credentials are missing, wrong, or not allowed to do this."""


class KubeUnavailableError(KubeError):
    """429, 5xx or a connection failure: transient.

    Attributes:
        retry_after: seconds the server asked to wait, or ``None``.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AzureError(PodIdentityError):
    """An Azure endpoint answered with an error.

    Attributes:
        status_code: the HTTP status code, 0 when no answer arrived.
        code: the service's error code (``AADSTS700016``, ``SecretNotFound``,
            ``LinkedAuthorizationFailed``, ``identity_not_found``, ...), or ``""``.
    """

    def __init__(self, message: str, *, status_code: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class AzureAuthenticationError(AzureError):
    """Azure AD rejected the credentials (wrong secret, unknown client, bad assertion)."""


class AzureForbiddenError(AzureError):
    """The caller is authenticated but not allowed to do this."""


class AzureNotFoundError(AzureError):
    """The resource, secret, key, certificate or identity does not exist."""


class IdentityNotAssignedError(AzureError):
    """IMDS has no such identity on this VM or scale set (yet: assignment may be in flight)."""


class AzureThrottledError(AzureError):
    """429 Too Many Requests.

    Attributes:
        retry_after: seconds to wait before the next call, as the service asked.
    """

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AzureUnavailableError(AzureError):
    """5xx, a reset connection or a timeout: transient, retry with backoff."""


class KeyVaultFetchError(PodIdentityError):
    """One or more Key Vault objects could not be fetched or converted.

    The message lists every failed object with its vault, HTTP status and the service's message;
    values are never part of it.

    Attributes:
        failures: one entry per failed object (``podidentity.keyvault.ObjectFailure``), each
            with ``object``, ``vault``, ``status_code``, ``code``, ``message`` and ``error`` (the
            typed error: ``AzureNotFoundError``, ``AzureForbiddenError``, ``ValidationError``,
            ...).
        result: the partial result: every object that did succeed
            (``podidentity.keyvault.FetchResult``).
    """

    def __init__(self, message: str, *, failures: tuple[Any, ...], result: Any) -> None:
        super().__init__(message)
        self.failures = failures
        self.result = result


class ReconcileError(PodIdentityError):
    """A reconcile step did not complete."""


class TemporaryReconcileError(ReconcileError):
    """Retry the key after ``delay`` seconds (``None``: the queue's backoff decides)."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentReconcileError(ReconcileError):
    """Retrying will not help until the input changes; the key is dropped from the queue."""


class TokenRequestRefusedError(PodIdentityError):
    """The token proxy refuses a token request; the message is safe to show the caller."""


class BadTokenRequestError(TokenRequestRefusedError):
    """The request is malformed: unknown or tricky path, missing header or parameter."""


class CallerNotIdentifiedError(TokenRequestRefusedError):
    """No single pod on this node can be taken as the caller, or its token did not verify."""


class IdentityNotPermittedError(TokenRequestRefusedError):
    """The calling pod asked for an identity that is not assigned to it."""


class AssignmentPendingError(TokenRequestRefusedError):
    """The pod's identity is not usable yet (assignment or propagation in flight).

    Attributes:
        retry_after: seconds after which the caller should ask again.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
