"""A three-level certificate chain (root, intermediate, server) for ordering tests."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from podidentity.testing._pki import IssuedCertificate


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, issuer: str, key: rsa.RSAPrivateKey, signer: rsa.RSAPrivateKey, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def three_level_chain(
    server: str = "orders.example",
) -> tuple[IssuedCertificate, list[x509.Certificate]]:
    """An issued server certificate whose chain is stored root first (the wrong order).

    Returns the certificate and the expected order: server, intermediate, root.
    """
    root_key, mid_key, leaf_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)
    )
    root = _cert("Test Root", "Test Root", root_key, root_key, True)
    mid = _cert("Test Intermediate", "Test Root", mid_key, root_key, True)
    leaf = _cert(server, "Test Intermediate", leaf_key, mid_key, False)
    issued = IssuedCertificate(certificate=leaf, private_key=leaf_key, chain=(root, mid))
    return issued, [leaf, mid, root]
