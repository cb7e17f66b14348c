"""What one emulated vault holds: secret, key and certificate versions, deleted secrets, policies.

Pure state with no HTTP: :class:`Vault` methods are called by the setup API (test threads) and
by the request handlers (the serving loop), always under :attr:`Vault.lock`. Object names are
case-insensitive, as in Key Vault: they are stored under their lower-case form and keep the
spelling they were created with. Versions are 32 hex digits; the latest version is the one
created last. Secret values and private keys never appear in a ``repr``.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from typing import TypeVar

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from podidentity.testing._faults import FaultInjector, RequestLog
from podidentity.testing._pki import IssuedCertificate
from podidentity.testing.azure._keyvault._auth import AccessPolicy
from podidentity.testing.azure._keyvault._errors import KeyVaultError, not_found

__all__ = [
    "RECOVERABLE_DAYS",
    "CertificateVersion",
    "DeletedSecret",
    "KeyVersion",
    "SecretVersion",
    "Vault",
    "new_version",
    "validate_object_name",
]

#: Soft-delete retention of a new vault (its ``recoverableDays``).
RECOVERABLE_DAYS = 90
_OBJECT_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_DAY = 86400


def new_version() -> str:
    """A fresh object version: 32 lower-case hex digits, like Key Vault's."""
    return uuid.uuid4().hex


def validate_object_name(name: str) -> None:
    """Refuse names Key Vault refuses (1-127 letters, digits and dashes).

    Raises:
        KeyVaultError: ``400 BadParameter``.
    """
    if not _OBJECT_NAME.match(name):
        raise KeyVaultError(
            400, "BadParameter", f"The request URI contains an invalid name: {name}"
        )


@attrs.define
class SecretVersion:
    """One version of a secret (or of a certificate's backing secret when ``managed``)."""

    name: str
    version: str
    value: str = attrs.field(repr=False)
    created: int
    updated: int
    content_type: str | None = None
    tags: dict[str, str] | None = None
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    managed: bool = False


@attrs.define
class KeyVersion:
    """One version of an RSA key (the private half stays here, never on the wire)."""

    name: str
    version: str
    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    created: int
    updated: int
    key_ops: tuple[str, ...] = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey")
    enabled: bool = True
    managed: bool = False
    tags: dict[str, str] | None = None


@attrs.define
class CertificateVersion:
    """One version of a certificate; its key and secret share the name and version."""

    name: str
    version: str
    certificate: IssuedCertificate
    content_type: str
    created: int
    updated: int
    enabled: bool = True
    tags: dict[str, str] | None = None


@attrs.define
class DeletedSecret:
    """A soft-deleted secret: every version, kept until purged or recovered."""

    versions: list[SecretVersion]
    deleted_date: int
    scheduled_purge_date: int

    @property
    def latest(self) -> SecretVersion:
        """The version that was current when the secret was deleted."""
        return self.versions[-1]


def _key(name: str) -> str:
    return name.lower()


@attrs.define(eq=False)
class Vault:
    """The contents and rules of one vault."""

    name: str
    url: str
    tenant_id: str
    location: str
    secrets: dict[str, list[SecretVersion]] = attrs.field(factory=dict, repr=False)
    deleted_secrets: dict[str, DeletedSecret] = attrs.field(factory=dict, repr=False)
    keys: dict[str, list[KeyVersion]] = attrs.field(factory=dict, repr=False)
    certificates: dict[str, list[CertificateVersion]] = attrs.field(factory=dict, repr=False)
    policies: dict[str, AccessPolicy] = attrs.field(factory=dict, repr=False)
    log: RequestLog = attrs.field(factory=RequestLog, repr=False)
    faults: FaultInjector = attrs.field(factory=FaultInjector, repr=False)
    lock: threading.RLock = attrs.field(factory=threading.RLock, repr=False)

    # -- secrets ---------------------------------------------------------------------------

    def secret_versions(self, name: str) -> list[SecretVersion]:
        """All versions of a live secret, oldest first.

        Raises:
            KeyVaultError: ``404 SecretNotFound``.
        """
        versions = self.secrets.get(_key(name))
        if not versions:
            raise not_found("secret", name)
        return versions

    def secret(self, name: str, version: str | None = None) -> SecretVersion:
        """The latest (or the given) version of a live secret.

        Raises:
            KeyVaultError: ``404 SecretNotFound``.
        """
        versions = self.secret_versions(name)
        if not version:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version.lower():
                return candidate
        raise not_found("secret", name, version)

    def add_secret(self, secret: SecretVersion) -> SecretVersion:
        """Make ``secret`` the latest version of its secret.

        Raises:
            KeyVaultError: ``409 Conflict`` while a secret of that name is soft-deleted.
        """
        validate_object_name(secret.name)
        if _key(secret.name) in self.deleted_secrets:
            raise KeyVaultError(
                409,
                "Conflict",
                f"Secret {secret.name} is currently in a deleted but recoverable state, and its "
                "name cannot be reused; in this state, the secret can only be recovered or "
                "purged.",
            )
        return _append_version(self.secrets, secret)

    def add_key(self, key: KeyVersion) -> KeyVersion:
        """Make ``key`` the latest version of its key."""
        return _append_version(self.keys, key)

    def add_certificate(self, certificate: CertificateVersion) -> CertificateVersion:
        """Make ``certificate`` the latest version of its certificate."""
        return _append_version(self.certificates, certificate)

    def delete_secret(self, name: str, now: int) -> DeletedSecret:
        """Soft-delete a secret with all its versions.

        Raises:
            KeyVaultError: ``404 SecretNotFound``.
        """
        versions = self.secret_versions(name)
        deleted = DeletedSecret(
            versions=versions,
            deleted_date=now,
            scheduled_purge_date=now + RECOVERABLE_DAYS * _DAY,
        )
        del self.secrets[_key(name)]
        self.deleted_secrets[_key(name)] = deleted
        return deleted

    def deleted_secret(self, name: str) -> DeletedSecret:
        """A soft-deleted secret.

        Raises:
            KeyVaultError: ``404 SecretNotFound`` ("Deleted Secret not found").
        """
        deleted = self.deleted_secrets.get(_key(name))
        if deleted is None:
            raise KeyVaultError(404, "SecretNotFound", "Deleted Secret not found")
        return deleted

    def purge_secret(self, name: str) -> None:
        """Forget a soft-deleted secret for good."""
        self.deleted_secret(name)
        del self.deleted_secrets[_key(name)]

    def recover_secret(self, name: str) -> SecretVersion:
        """Bring a soft-deleted secret back; returns its latest version."""
        deleted = self.deleted_secret(name)
        del self.deleted_secrets[_key(name)]
        self.secrets[_key(name)] = deleted.versions
        return deleted.latest

    # -- keys and certificates -------------------------------------------------------------

    def key(self, name: str, version: str | None = None) -> KeyVersion:
        """The latest (or the given) version of a key.

        Raises:
            KeyVaultError: ``404 KeyNotFound``.
        """
        return _pick(self.keys, "key", name, version)

    def certificate(self, name: str, version: str | None = None) -> CertificateVersion:
        """The latest (or the given) version of a certificate.

        Raises:
            KeyVaultError: ``404 CertificateNotFound``.
        """
        return _pick(self.certificates, "certificate", name, version)

    def grant(self, policy: AccessPolicy) -> None:
        """Add an access-policy entry, merging with the principal's existing one."""
        oid = policy.object_id.lower()
        current = self.policies.get(oid)
        if current is not None:
            policy = AccessPolicy(
                object_id=current.object_id,
                secrets=current.secrets | policy.secrets,
                certificates=current.certificates | policy.certificates,
                keys=current.keys | policy.keys,
            )
        self.policies[oid] = policy


_T = TypeVar("_T", KeyVersion, CertificateVersion)


_V = TypeVar("_V", SecretVersion, KeyVersion, CertificateVersion)


def _append_version(store: dict[str, list[_V]], item: _V) -> _V:
    # Names are case-insensitive and keep the spelling of their first version, as in Azure.
    existing = store.get(_key(item.name))
    if existing:
        item.name = existing[0].name
    store.setdefault(_key(item.name), []).append(item)
    return item


def _pick(store: Mapping[str, list[_T]], kind: str, name: str, version: str | None) -> _T:
    versions = store.get(_key(name))
    if not versions:
        raise not_found(kind, name)
    if not version:
        return versions[-1]
    for candidate in versions:
        if candidate.version == version.lower():
            return candidate
    raise not_found(kind, name, version)
