"""Fixtures for the Azure emulator tests: a running emulator and a small OIDC issuer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from podidentity.testing._jwt import JwtSigner
from podidentity.testing._server import ServerThread, TLSFiles
from podidentity.testing.azure import AzureEmulator, ManualClock
from tests.testing.azure.oidc_issuer import OidcIssuer, issuer_app


@pytest.fixture
def azure() -> Iterator[AzureEmulator]:
    with AzureEmulator() as emulator:
        yield emulator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def azure_with_clock(clock: ManualClock) -> Iterator[AzureEmulator]:
    with AzureEmulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
def oidc_issuer(azure: AzureEmulator, tmp_path: Any) -> Iterator[OidcIssuer]:
    """An HTTPS OIDC issuer on 127.0.0.1 with a certificate from the emulator's CA."""
    signer = JwtSigner()
    url_box: list[str] = []
    cert, key = azure.ca.issue_server(["127.0.0.1"]).write(tmp_path, "issuer")
    with ServerThread("oidc-issuer") as server:
        running = server.serve_asgi(
            issuer_app(signer, url_box), tls=TLSFiles(cert_file=cert, key_file=key)
        )
        url_box.append(running.url)
        yield OidcIssuer(url=running.url, signer=signer)
