"""Keep a test run on this machine: refuse any connection outside 127.0.0.0/8 and ``::1``.

Installed once per process (Python audit hooks cannot be removed), then switched on and off.
A refused connection raises :class:`ForeignConnectionError` inside the code that tried it and is
recorded in :attr:`NetworkGuard.violations`, so a test runner can fail the run even when the
code under test swallowed the exception (as retrying HTTP clients do).

Name resolution is guarded too: resolving anything but ``localhost`` or an IP literal would
send a DNS query off the machine. Subprocesses (``kubectl``) are not covered: give them only
loopback addresses.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from typing import Any

__all__ = ["ForeignConnectionError", "NetworkGuard", "guard"]


_LOOKUP_EVENTS = frozenset(
    {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"}
)


class ForeignConnectionError(ConnectionRefusedError):
    """A connection or name lookup outside the loopback range was attempted and refused."""


def _is_loopback_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class NetworkGuard:
    """An audit hook that refuses non-loopback connections while :attr:`enabled` is true."""

    def __init__(self) -> None:
        self.enabled = False
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        """Register the audit hook (idempotent) and switch the guard on."""
        if not self._installed:
            sys.addaudithook(self._hook)
            self._installed = True
        self.enabled = True

    def _refuse(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)
        raise ForeignConnectionError(
            f"podidentity network guard: refused {what}; tests may only reach 127.0.0.0/8 "
            "(route Azure host names through the emulator's proxy)"
        )

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.enabled:
            return
        if event == "socket.connect":
            sock, address = args
            if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
                host = address[0] if isinstance(address, tuple) else address
                if not _is_loopback_host(host):
                    self._refuse(f"a connection to {address!r}")
        elif event in _LOOKUP_EVENTS and not _is_loopback_host(args[0]):
            self._refuse(f"a name lookup of {args[0]!r}")


guard = NetworkGuard()
"""The process-wide guard; :mod:`podidentity.testing.pytest_plugin` switches it on."""
