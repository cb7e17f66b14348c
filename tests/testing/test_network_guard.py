from __future__ import annotations

import socket

import pytest

from podidentity.testing.network_guard import ForeignConnectionError, NetworkGuard, guard


def test_guard_is_on_for_the_test_run() -> None:
    assert guard.enabled


def test_connection_outside_loopback_is_refused_and_recorded() -> None:
    before = len(guard.violations)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ForeignConnectionError, match=r"169\.254\.169\.254"):
            sock.connect(("169.254.169.254", 80))
    finally:
        sock.close()
    assert "169.254.169.254" in guard.violations[-1]
    # This refusal was provoked on purpose; keep it from failing the session.
    del guard.violations[before:]


def test_name_lookup_of_a_public_host_is_refused() -> None:
    before = len(guard.violations)
    with pytest.raises(ForeignConnectionError, match=r"login\.microsoftonline\.com"):
        socket.getaddrinfo("login.microsoftonline.com", 443)
    del guard.violations[before:]


def test_loopback_is_allowed() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.7", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=5)
    client.close()
    server.close()
    assert socket.getaddrinfo("localhost", 80)


def test_a_disabled_guard_lets_everything_through() -> None:
    other = NetworkGuard()
    assert not other.enabled
    with socket.socket() as sock:
        other._hook("socket.connect", (sock, ("10.0.0.1", 80)))  # no exception
    assert other.violations == []
