"""The node's redirect rule: the exact rule set (pure), and the keeper driving a fake
``iptables`` program as a child process."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from podidentity.errors import ConfigError
from podidentity.nmi.iptables import IptablesKeeper, RedirectRule

FAKE = Path(__file__).parents[1] / "cli" / "fake_iptables.py"
DNAT = [
    "-p", "tcp", "-d", "169.254.169.254/32", "--dport", "80", "!", "-s", "127.0.0.1/32",
    "-j", "DNAT", "--to-destination",
]  # fmt: skip


def test_the_default_rule_set_is_upstreams_with_its_own_chain() -> None:
    rule = RedirectRule(target_host="10.240.0.4")
    assert rule.install_commands() == [
        ["-t", "nat", "-N", "podidentity-nmi"],
        ["-t", "nat", "-A", "podidentity-nmi", *DNAT, "10.240.0.4:2579"],
        ["-t", "nat", "-A", "podidentity-nmi", "-j", "RETURN"],
        ["-t", "nat", "-I", "PREROUTING", "1", "-j", "podidentity-nmi"],
    ]
    assert rule.remove_commands() == [
        ["-t", "nat", "-D", "PREROUTING", "-j", "podidentity-nmi"],
        ["-t", "nat", "-F", "podidentity-nmi"],
        ["-t", "nat", "-X", "podidentity-nmi"],
    ]


def test_pod_networks_and_interfaces_get_a_jump_each() -> None:
    rule = RedirectRule(
        target_host="127.0.0.1",
        target_port=8790,
        chain="aad-metadata",
        pod_cidrs=["10.244.1.7/16"],
        pod_interfaces=["azv+", "cbr0"],
    )
    assert rule.jump_rules() == (
        ("-s", "10.244.0.0/16", "-j", "aad-metadata"),
        ("-i", "azv+", "-j", "aad-metadata"),
        ("-i", "cbr0", "-j", "aad-metadata"),
    )
    assert rule.script("iptables-legacy").splitlines() == [
        "iptables-legacy -t nat -N aad-metadata",
        "iptables-legacy -t nat -A aad-metadata -p tcp -d 169.254.169.254/32 --dport 80 '!' -s "
        "127.0.0.1/32 -j DNAT --to-destination 127.0.0.1:8790",
        "iptables-legacy -t nat -A aad-metadata -j RETURN",
        "iptables-legacy -t nat -I PREROUTING 1 -s 10.244.0.0/16 -j aad-metadata",
        "iptables-legacy -t nat -I PREROUTING 1 -i azv+ -j aad-metadata",
        "iptables-legacy -t nat -I PREROUTING 1 -i cbr0 -j aad-metadata",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target_host": "0.0.0.0"}, "cannot be 0.0.0.0"),  # noqa: S104
        ({"target_host": "fd00::1"}, "is not an IPv4 address"),
        ({"target_host": "node-1"}, "is not an IPv4 address"),
        ({"target_host": "10.0.0.1", "target_port": 70000}, "out of range"),
        ({"target_host": "10.0.0.1", "chain": "bad chain; rm"}, "iptables chain"),
        ({"target_host": "10.0.0.1", "pod_cidrs": ["10.0.0.0/99"]}, "not an IPv4 network"),
        ({"target_host": "10.0.0.1", "pod_interfaces": ["eth0 -j ACCEPT"]}, "interface name"),
    ],
)
def test_bad_rules_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RedirectRule(**options)  # type: ignore[arg-type]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    program = tmp_path / "iptables"
    program.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_IPTABLES_STATE", str(tmp_path / "nat.json"))
    monkeypatch.setenv("FAKE_IPTABLES_LOG", str(tmp_path / "log"))
    return program


def table(fake: Path) -> dict[str, list[list[str]]]:
    loaded: dict[str, list[list[str]]] = json.loads((fake.parent / "nat.json").read_text())
    return loaded


async def test_ensure_is_idempotent_and_repairs_a_tampered_chain(fake: Path) -> None:
    rule = RedirectRule(target_host="10.240.0.4")
    keeper = IptablesKeeper(rule, executable=str(fake))
    assert await keeper.ensure() is True
    assert await keeper.ensure() is False  # nothing to do the second time
    installed = table(fake)
    assert installed["podidentity-nmi"] == [list(r) for r in rule.chain_rules()]
    assert installed["PREROUTING"] == [["-j", "podidentity-nmi"]]

    # An extra rule slipped into the chain: it is flushed and refilled exactly.
    other = RedirectRule(target_host="10.9.9.9")
    chain = installed["podidentity-nmi"]
    chain.insert(0, list(other.chain_rules()[0]))
    (fake.parent / "nat.json").write_text(json.dumps(installed))
    assert await keeper.ensure() is True
    assert table(fake)["podidentity-nmi"] == [list(r) for r in rule.chain_rules()]
    assert keeper.repairs == 2

    await keeper.remove()
    assert table(fake) == {"PREROUTING": [], "INPUT": [], "OUTPUT": [], "POSTROUTING": []}
    await keeper.remove()  # already gone: nothing fails


async def test_a_failing_iptables_is_a_config_error(
    fake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IPTABLES_DENY", "1")
    keeper = IptablesKeeper(RedirectRule(target_host="10.240.0.4"), executable=str(fake))
    with pytest.raises(ConfigError, match=r"-N podidentity-nmi failed \(exit 1\).*must be root"):
        await keeper.ensure()
    missing = IptablesKeeper(RedirectRule(target_host="10.240.0.4"), executable="/nonexistent/ipt")
    with pytest.raises(ConfigError, match="cannot run '/nonexistent/ipt'"):
        await missing.ensure()
