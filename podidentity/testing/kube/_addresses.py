"""Unique loopback addresses for emulated pods and nodes.

Every pod and node of the emulated cluster gets its own address in 127.0.0.0/8. Linux routes
that whole block to the loopback interface, so a test process can bind a socket to a pod's IP
and *be* that pod to a token proxy that maps the TCP source address to a pod, exactly as NMI does
with real pod IPs.
"""

from __future__ import annotations

import heapq
import ipaddress
import threading

__all__ = ["NODE_NETWORK", "POD_NETWORK", "AddressExhaustedError", "AddressPool"]

#: Where pod IPs come from (the emulated cluster's pod CIDR).
POD_NETWORK = ipaddress.IPv4Network("127.10.0.0/16")

#: Where node InternalIPs come from.
NODE_NETWORK = ipaddress.IPv4Network("127.20.0.0/16")

# 127.0.0.1 is where every emulator listens; an address pool must never hand it to a pod, or
# the pod would be indistinguishable from the test process itself.
_NEVER = ipaddress.IPv4Address("127.0.0.1")


class AddressExhaustedError(RuntimeError):
    """Every address of a pool is held."""


class AddressPool:
    """Hands out IPv4 addresses from a loopback network, one per owner, never two at once.

    By default allocation moves round the network: a released address is not handed out again
    until the pool has wrapped round. With ``reuse=True`` the lowest free address is always
    handed out, so a released address goes to the very next owner, as a busy node's IPAM does
    with a deleted pod's IP: code that maps addresses to pods must cope with that, and tests
    can make it happen on purpose. Safe to use from several threads.

    Args:
        network: the block to allocate from; must lie inside 127.0.0.0/8.
        reuse: hand out the lowest free address (instead of moving round).
    """

    def __init__(self, network: ipaddress.IPv4Network | str, *, reuse: bool = False) -> None:
        net = ipaddress.IPv4Network(network)
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"{net} is not inside 127.0.0.0/8; emulated addresses stay local")
        self.network = net
        self._by_owner: dict[str, ipaddress.IPv4Address] = {}
        self._owners: dict[ipaddress.IPv4Address, str] = {}
        self._cursor = 0
        self._reuse = reuse
        #: with ``reuse``: released offsets below the cursor, lowest first (may hold stale ones)
        self._freed: list[int] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AddressPool({str(self.network)!r}, held={len(self._owners)})"

    def __len__(self) -> int:
        return len(self._owners)

    def __contains__(self, address: object) -> bool:
        try:
            ip = ipaddress.IPv4Address(str(address))
        except ValueError:
            return False
        return ip in self._owners

    def _usable(self, ip: ipaddress.IPv4Address) -> bool:
        # Skip the .0 and .255 host parts: some resolvers and tools treat them as network or
        # broadcast addresses even inside a /16, and nothing is gained by using them.
        last = int(ip) & 0xFF
        return ip != _NEVER and last not in (0, 255)

    def allocate(self, owner: str) -> str:
        """Return the owner's address, allocating a fresh one on the first call.

        Calling again for the same owner returns the same address, so a scheduler that sees a
        pod twice does not leak addresses.

        Raises:
            AddressExhaustedError: every usable address is held.
        """
        with self._lock:
            held = self._by_owner.get(owner)
            if held is not None:
                return str(held)
            size = self.network.num_addresses
            base = int(self.network.network_address)
            while self._reuse and self._freed:
                offset = heapq.heappop(self._freed)
                ip = ipaddress.IPv4Address(base + offset)
                if ip not in self._owners:
                    self._by_owner[owner] = ip
                    self._owners[ip] = owner
                    return str(ip)
            for step in range(size):
                ip = ipaddress.IPv4Address(base + (self._cursor + step) % size)
                if self._usable(ip) and ip not in self._owners:
                    self._cursor = (self._cursor + step + 1) % size
                    self._by_owner[owner] = ip
                    self._owners[ip] = owner
                    return str(ip)
            raise AddressExhaustedError(f"no free address left in {self.network}")

    def reserve(self, owner: str, address: str) -> str:
        """Hold a specific address for an owner (an address the user chose).

        Raises:
            ValueError: the address is outside the pool or held by someone else.
        """
        ip = ipaddress.IPv4Address(address)
        if ip not in self.network or not self._usable(ip):
            raise ValueError(f"{ip} is not a usable address of {self.network}")
        with self._lock:
            current = self._owners.get(ip)
            if current is not None and current != owner:
                raise ValueError(f"{ip} is already held")
            previous = self._by_owner.pop(owner, None)
            if previous is not None:
                del self._owners[previous]
            self._by_owner[owner] = ip
            self._owners[ip] = owner
            return str(ip)

    def release(self, owner: str) -> str | None:
        """Give back the owner's address; returns it, or ``None`` if the owner held none."""
        with self._lock:
            ip = self._by_owner.pop(owner, None)
            if ip is None:
                return None
            del self._owners[ip]
            if self._reuse:
                heapq.heappush(self._freed, int(ip) - int(self.network.network_address))
            return str(ip)

    def address_of(self, owner: str) -> str | None:
        """The address an owner holds, if any."""
        with self._lock:
            ip = self._by_owner.get(owner)
            return None if ip is None else str(ip)

    def owner_of(self, address: str) -> str | None:
        """Who holds an address, if anyone."""
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return None
        with self._lock:
            return self._owners.get(ip)
