from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from podidentity.testing._pki import CertificateAuthority


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError) as err:
            errors.append(err)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            tls.sendall(b"x")
    finally:
        thread.join(5)
        listener.close()


def test_server_certificate_is_trusted_for_its_names_only(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue_server(["*.vault.azure.net", "127.0.0.1"])
    cert_file, key_file = issued.write(tmp_path, "kv")
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    _handshake(server_ctx, client_ctx, "myvault.vault.azure.net")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ctx, client_ctx, "login.microsoftonline.com")


def test_a_certificate_from_another_ca_is_not_trusted(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    stranger = CertificateAuthority("someone else")
    cert_file, key_file = stranger.issue_server(["localhost"]).write(tmp_path, "x")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ctx, ssl.create_default_context(cadata=ca.cert_pem.decode()), "localhost")


def test_client_certificate_exports_pem_and_pkcs12(ca: CertificateAuthority) -> None:
    issued = ca.issue_client("my-service-principal")
    key, cert, chain = pkcs12.load_key_and_certificates(issued.pkcs12(b"pw"), b"pw")
    assert cert == issued.certificate
    assert key is not None
    assert chain == [ca.certificate]
    assert issued.pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = x509.load_pem_x509_certificates(issued.cert_pem)
    assert loaded[0] == issued.certificate
    assert len(issued.thumbprint_sha1) == 40
    assert len(issued.thumbprint_sha256) == 64


def test_repr_never_shows_the_private_key(ca: CertificateAuthority) -> None:
    issued = ca.issue_client("sp")
    assert "PRIVATE" not in repr(issued)
    assert "sp" in repr(issued)


def test_a_server_certificate_needs_a_name(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="at least one host name"):
        ca.issue_server([])
