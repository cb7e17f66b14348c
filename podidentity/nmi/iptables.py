"""The node's DNAT rule that sends pods' IMDS traffic to the token proxy.

Pods call ``169.254.169.254:80``; a rule in the ``nat`` table redirects that to the proxy. As
upstream aad-pod-identity did (its ``aad-metadata`` chain), the rules live in a chain of their
own, reached from ``PREROUTING``::

    iptables -t nat -N podidentity-nmi
    iptables -t nat -A podidentity-nmi -p tcp -d 169.254.169.254/32 --dport 80
        ! -s 127.0.0.1/32 -j DNAT --to-destination 10.240.0.4:2579
    iptables -t nat -A podidentity-nmi -j RETURN
    iptables -t nat -I PREROUTING 1 -j podidentity-nmi

Only traffic arriving from another network namespace passes ``PREROUTING``: processes on the
host network (the node, ``hostNetwork`` pods) go through ``OUTPUT`` and keep reaching the real
IMDS. ``pod_cidrs`` or ``pod_interfaces`` narrow the jump further.

:class:`RedirectRule` and its ``*_commands`` methods are pure (the rule set, tested exactly);
:class:`IptablesKeeper` runs them through the ``iptables`` program: installs, re-checks
periodically (re-adding what was removed), and removes them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import shlex
from collections.abc import Awaitable, Callable, Sequence

import attrs

from podidentity.errors import ConfigError

__all__ = [
    "DEFAULT_CHAIN",
    "IMDS_ADDRESS",
    "CommandRunner",
    "IptablesKeeper",
    "RedirectRule",
    "run_command",
]

_log = logging.getLogger(__name__)

IMDS_ADDRESS = "169.254.169.254"
"""Where pods send their IMDS requests."""
DEFAULT_CHAIN = "podidentity-nmi"
"""The ``nat`` chain that holds the redirect."""
_TABLE = ("-t", "nat")
_CHAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,28}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,15}$")


def _target(value: str) -> str:
    return _ipv4(value, "the DNAT target")


def _ipv4(value: str, what: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not an IPv4 address") from None
    return str(address)


def _cidrs(values: Sequence[str]) -> tuple[str, ...]:
    found = []
    for value in values:
        try:
            found.append(str(ipaddress.IPv4Network(value, strict=False)))
        except ValueError:
            raise ConfigError(f"pod CIDR {value!r} is not an IPv4 network") from None
    return tuple(found)


def _interfaces(values: Sequence[str]) -> tuple[str, ...]:
    for value in values:
        if not _INTERFACE.match(value):
            raise ConfigError(f"pod interface {value!r} is not a network interface name")
    return tuple(values)


@attrs.frozen(kw_only=True)
class RedirectRule:
    """The redirect of ``destination:destination_port`` to the proxy, as iptables rules.

    Attributes:
        target_host: the proxy's IPv4 address (the DNAT destination). A loopback address needs
            ``net.ipv4.conf.<pod interface>.route_localnet=1`` on the node.
        target_port: the proxy's port.
        chain: the ``nat`` chain holding the rule.
        pod_cidrs: jump only for traffic from these networks (one jump each).
        pod_interfaces: jump only for traffic arriving on these interfaces (one jump each).
            With neither, everything that passes ``PREROUTING`` jumps.
        destination: the address redirected (IMDS).
        destination_port: the port redirected.
    """

    target_host: str = attrs.field(converter=_target)
    target_port: int = 2579
    chain: str = DEFAULT_CHAIN
    pod_cidrs: tuple[str, ...] = attrs.field(default=(), converter=_cidrs)
    pod_interfaces: tuple[str, ...] = attrs.field(default=(), converter=_interfaces)
    destination: str = IMDS_ADDRESS
    destination_port: int = 80

    def __attrs_post_init__(self) -> None:
        if self.target_host == "0.0.0.0":  # noqa: S104 - refused here, never bound
            raise ConfigError(
                "the DNAT target cannot be 0.0.0.0: give the node's address the proxy listens on"
            )
        if not _CHAIN_NAME.match(self.chain):
            raise ConfigError(f"iptables chain {self.chain!r}: 1 to 28 letters, digits, _.-")
        for port in (self.target_port, self.destination_port):
            if not 0 < port < 65536:
                raise ConfigError(f"port {port} is out of range")

    def chain_rules(self) -> tuple[tuple[str, ...], ...]:
        """The rules of :attr:`chain`, in order (without ``-A <chain>``)."""
        return (
            (
                "-p",
                "tcp",
                "-d",
                f"{self.destination}/32",
                "--dport",
                str(self.destination_port),
                "!",
                "-s",
                "127.0.0.1/32",
                "-j",
                "DNAT",
                "--to-destination",
                f"{self.target_host}:{self.target_port}",
            ),
            ("-j", "RETURN"),
        )

    def jump_rules(self) -> tuple[tuple[str, ...], ...]:
        """The ``PREROUTING`` rules that send traffic into :attr:`chain`."""
        jumps = [("-s", cidr, "-j", self.chain) for cidr in self.pod_cidrs]
        jumps += [("-i", name, "-j", self.chain) for name in self.pod_interfaces]
        return tuple(jumps) or (("-j", self.chain),)

    def install_commands(self) -> list[list[str]]:
        """The ``iptables`` arguments that install the rules on a clean node, in order."""
        commands = [[*_TABLE, "-N", self.chain]]
        commands += [[*_TABLE, "-A", self.chain, *rule] for rule in self.chain_rules()]
        commands += [[*_TABLE, "-I", "PREROUTING", "1", *jump] for jump in self.jump_rules()]
        return commands

    def remove_commands(self) -> list[list[str]]:
        """The ``iptables`` arguments that remove the rules, in order."""
        commands = [[*_TABLE, "-D", "PREROUTING", *jump] for jump in self.jump_rules()]
        return [*commands, [*_TABLE, "-F", self.chain], [*_TABLE, "-X", self.chain]]

    def script(self, executable: str = "iptables") -> str:
        """:meth:`install_commands` as shell lines, to print for an operator."""
        return "\n".join(shlex.join([executable, *args]) for args in self.install_commands())


CommandRunner = Callable[[Sequence[str]], Awaitable[tuple[int, str]]]
"""Runs one command line; answers its exit status and its output (stdout and stderr)."""


async def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run ``argv`` as a child process: the default :data:`CommandRunner`.

    Raises:
        ConfigError: the program cannot be started (not installed, not executable).
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as err:
        raise ConfigError(f"cannot run {argv[0]!r}: {err.strerror}") from err
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace").strip()


class IptablesKeeper:
    """Installs a :class:`RedirectRule`, keeps it in place, and removes it.

    Args:
        rule: the rule.
        executable: the ``iptables`` program (``iptables-legacy``, ``iptables-nft``, a path).
        interval: seconds between checks in :meth:`keep`.
        run: how commands are run (:func:`run_command` by default).
    """

    def __init__(
        self,
        rule: RedirectRule,
        *,
        executable: str = "iptables",
        interval: float = 60.0,
        run: CommandRunner = run_command,
    ) -> None:
        if not interval > 0:
            raise ConfigError(f"the iptables check interval must be positive, got {interval}")
        self.rule = rule
        self.executable = executable
        self.interval = interval
        self._run = run
        self.repairs = 0
        """How many checks found the rules incomplete and put them back (the first install
        included)."""

    def __repr__(self) -> str:
        return f"IptablesKeeper({self.rule.chain!r}, every {self.interval:g}s)"

    async def _iptables(self, *args: str) -> tuple[int, str]:
        return await self._run([self.executable, *args])

    async def _must(self, *args: str) -> None:
        status, output = await self._iptables(*args)
        if status != 0:
            raise ConfigError(
                f"{shlex.join([self.executable, *args])} failed (exit {status}): {output}; "
                "the token proxy needs NET_ADMIN and the host network to manage iptables"
            )

    async def ensure(self) -> bool:
        """Make the rules be in place; True when anything had to be (re)installed.

        Raises:
            ConfigError: an ``iptables`` command failed (its output is in the message).
        """
        rule, chain = self.rule, self.rule.chain
        changed = False
        status, listing = await self._iptables(*_TABLE, "-S", chain)
        if status != 0:
            await self._must(*_TABLE, "-N", chain)
            listing, changed = "", True
        appended = [line for line in listing.splitlines() if line.startswith(f"-A {chain} ")]
        complete = len(appended) == len(rule.chain_rules())
        if complete:
            for args in rule.chain_rules():
                if (await self._iptables(*_TABLE, "-C", chain, *args))[0] != 0:
                    complete = False
                    break
        if not complete:
            await self._must(*_TABLE, "-F", chain)
            for args in rule.chain_rules():
                await self._must(*_TABLE, "-A", chain, *args)
            changed = True
        for jump in rule.jump_rules():
            if (await self._iptables(*_TABLE, "-C", "PREROUTING", *jump))[0] != 0:
                await self._must(*_TABLE, "-I", "PREROUTING", "1", *jump)
                changed = True
        if changed:
            self.repairs += 1
            _log.info(
                "iptables: %s -> %s:%s installed in nat chain %s",
                f"{rule.destination}:{rule.destination_port}",
                rule.target_host,
                rule.target_port,
                chain,
            )
        return changed

    async def remove(self) -> None:
        """Remove the jumps and the chain; what is already gone is skipped."""
        chain = self.rule.chain
        for jump in self.rule.jump_rules():
            # A jump added twice (by hand, or by two proxies) is removed as often as found.
            for _ in range(16):
                if (await self._iptables(*_TABLE, "-C", "PREROUTING", *jump))[0] != 0:
                    break
                await self._must(*_TABLE, "-D", "PREROUTING", *jump)
        if (await self._iptables(*_TABLE, "-S", chain))[0] == 0:
            await self._must(*_TABLE, "-F", chain)
            await self._must(*_TABLE, "-X", chain)
        _log.info("iptables: removed nat chain %s and its jumps", chain)

    async def keep(self, stop: asyncio.Event) -> None:
        """Check every :attr:`interval` until ``stop`` is set; failures are logged and retried."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                if await self.ensure():
                    _log.warning("iptables: the redirect was incomplete and has been restored")
            except ConfigError as err:
                _log.error("iptables: %s", err)
