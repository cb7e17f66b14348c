"""Certificates for the emulators: one generated CA, server certificates, client certificates.

Every emulator that speaks TLS gets its certificate from one :class:`CertificateAuthority`, so a
test trusts a single ``ca_bundle`` file. Keys are EC P-256 for servers (fast to generate) and
RSA-2048 for client certificates, which Azure AD requires for certificate credentials.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "IssuedCertificate"]

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_VALIDITY = dt.timedelta(days=7)
_BACKDATE = dt.timedelta(hours=1)


@attrs.frozen(repr=False)
class IssuedCertificate:
    """A certificate and its private key (the key never appears in ``repr``)."""

    certificate: x509.Certificate
    private_key: _PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def __repr__(self) -> str:
        return f"IssuedCertificate(subject={self.certificate.subject.rfc4514_string()!r})"

    @property
    def cert_pem(self) -> bytes:
        """The certificate followed by its chain, PEM."""
        certs = (self.certificate, *self.chain)
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    @property
    def cert_der(self) -> bytes:
        """The leaf certificate, DER (what Key Vault returns as ``cer``)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def pem(self) -> bytes:
        """Key then certificate chain in one PEM, as Key Vault stores ``application/x-pem-file``."""
        return self.key_pem + self.cert_pem

    def pkcs12(self, password: bytes | None = None, *, name: bytes = b"podidentity") -> bytes:
        """The key and chain as PKCS#12 (``application/x-pkcs12``)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            name, self.private_key, self.certificate, list(self.chain) or None, encryption
        )

    @property
    def thumbprint_sha1(self) -> str:
        """Upper-case hex SHA-1 of the DER certificate (the ``x5t`` Azure AD checks)."""
        return hashlib.sha1(self.cert_der, usedforsecurity=False).hexdigest().upper()

    @property
    def thumbprint_sha256(self) -> str:
        """Upper-case hex SHA-256 of the DER certificate (``x5t#S256``)."""
        return hashlib.sha256(self.cert_der).hexdigest().upper()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key`` (mode 0600) and return their paths."""
        cert_path = directory / f"{stem}.crt"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "podidentity emulators"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class CertificateAuthority:
    """A throw-away certificate authority for one emulated world."""

    def __init__(self, common_name: str = "podidentity emulator CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.certificate.subject.rfc4514_string()!r})"

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM: what clients trust."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, hostnames: Sequence[str]) -> IssuedCertificate:
        """Issue a TLS server certificate for host names, wildcards and IP addresses."""
        if not hostnames:
            raise ValueError("a server certificate needs at least one host name or address")
        sans: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._build(_name(hostnames[0]), key, ExtendedKeyUsageOID.SERVER_AUTH, sans=sans)
        return IssuedCertificate(certificate=cert, private_key=key, chain=(self.certificate,))

    def issue_client(self, common_name: str) -> IssuedCertificate:
        """Issue an RSA client certificate, as a service principal's certificate credential."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self._build(_name(common_name), key, ExtendedKeyUsageOID.CLIENT_AUTH, sans=[])
        return IssuedCertificate(certificate=cert, private_key=key, chain=(self.certificate,))

    def _build(
        self,
        subject: x509.Name,
        key: _PrivateKey,
        usage: x509.ObjectIdentifier,
        *,
        sans: list[x509.GeneralName],
    ) -> x509.Certificate:
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._key, hashes.SHA256())
