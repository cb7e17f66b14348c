"""``podidentity nmi``: the real command, in a child process.

Token requests reach it over TCP **from the pod's IP** (pod IPs are loopback addresses in the
emulated cluster), as the node's DNAT rule would deliver them. ``--iptables`` runs against a
fake ``iptables`` program placed first on ``PATH`` (a real child process recording its
arguments, with the nat table in a file): the command's I/O is real, only the kernel is not.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from click.testing import CliRunner

from podidentity.cli import main
from podidentity.cli.nmi import nmi
from podidentity.nmi import TokenProxySettings
from podidentity.reconciler import ControllerSettings
from podidentity.testing import KubeEmulator, Sandbox
from tests.cli.conftest import (
    ENDPOINTS,
    Command,
    assigned_states,
    base_env,
    binding_manifest,
    identity_manifest,
    pod_manifest,
    running_pod,
    token_request,
)
from tests.waiting import eventually

FAST = ControllerSettings(
    lease_duration=3, renew_deadline=2, retry_period=0.2, resync_interval=2, retry_max_delay=2
)
FAKE_IPTABLES = Path(__file__).with_name("fake_iptables.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- help, options, errors (in process) ----------------------------------------------------------


def test_help_describes_the_command() -> None:
    result = CliRunner().invoke(main, ["nmi", "--help"])
    assert result.exit_code == 0, result.output
    assert "Run the token proxy (NMI) of one node" in result.output
    for flag in ("--node", "--listen-address", "--probe-port", "--iptables", "--imds-url"):
        assert flag in result.output
    assert "NODE_NAME" in result.output


def test_every_token_proxy_setting_is_an_option() -> None:
    options = {param.name for param in nmi.params}
    fields = {field.name for field in attrs.fields(TokenProxySettings)}
    assert fields <= options, f"TokenProxySettings fields without an option: {fields - options}"


def test_option_defaults_are_the_token_proxys_defaults() -> None:
    # The options repeat the settings' defaults for --help; they must not drift apart. An
    # option without a default (None, or repeatable) leaves the choice to the settings.
    params = {param.name: param for param in nmi.params}
    for field in attrs.fields(TokenProxySettings):
        param = params[field.name]
        if param.multiple or param.default is None:
            continue
        assert param.default == field.default, f"--{field.name.replace('_', '-')}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Missing option '--node'"),
        (["--node", "n", "--kubeconfig", "/nonexistent/kc"], "kubeconfig '/nonexistent/kc' does"),
        (["--node", "n", "--iptables-target", "0.0.0.0"], "cannot be 0.0.0.0"),  # noqa: S104
        (["--node", "n", "--iptables", "--listen-address", "::1"], "is not an IPv4 address"),
        (["--node", "n", "--pod-cidr", "10.244.0.0/33"], "is not an IPv4 network"),
        (["--node", "n", "--controller-label", "novalue"], "give KEY=VALUE"),
        (["--node", "n", "--cache-size", "0"], "Invalid value for '--cache-size'"),
        (["--node", "n", "--iptables", "--port", "0"], "--iptables needs a fixed port"),
    ],
)
def test_bad_options_are_usage_errors_without_traceback(args: list[str], message: str) -> None:
    env = {"NODE_NAME": None, "PODIDENTITY_NMI_NODE": None, "KUBERNETES_SERVICE_HOST": None}
    result = CliRunner().invoke(main, ["nmi", *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_repeatable_and_flag_options_from_the_environment() -> None:
    base = {"NODE_NAME": "node-0", "KUBERNETES_SERVICE_HOST": None}
    cidrs = CliRunner().invoke(
        main, ["nmi"], env={**base, "PODIDENTITY_NMI_POD_CIDRS": "10.0.0.0/8 x"}
    )
    assert cidrs.exit_code == 2
    assert "pod CIDR 'x' is not an IPv4 network" in cidrs.output
    flag = {**base, "PODIDENTITY_NMI_USE_IPTABLES": "true", "PODIDENTITY_NMI_PORT": "0"}
    iptables = CliRunner().invoke(main, ["nmi"], env=flag)
    assert iptables.exit_code == 2
    assert "--iptables needs a fixed port" in iptables.output


@pytest.mark.parametrize("variable", ["NODE_NAME", "PODIDENTITY_NMI_NODE"])
def test_the_node_comes_from_the_downward_api_variable(variable: str) -> None:
    env = {variable: "aks-nodepool1-0", "PODIDENTITY_NMI_KUBECONFIG": "/nonexistent/kc"}
    result = CliRunner().invoke(main, ["nmi"], env=env)
    # The node was accepted: the command got as far as the (missing) kubeconfig.
    assert result.exit_code == 2
    assert "Missing option" not in result.output
    assert "kubeconfig '/nonexistent/kc' does not exist" in result.output


# -- the command serving tokens --------------------------------------------------------------


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_nmi_serves_its_bound_pod_and_refuses_others(
    world: Sandbox, run: Callable[..., Command]
) -> None:
    identity = world.azure.world.add_managed_identity("web-id")
    world.kube.create(identity_manifest("web-id", identity.resource_id, identity.client_id))
    world.kube.create(binding_manifest("web-binding", "web-id", "web"))
    world.kube.create(pod_manifest("web", aadpodidbinding="web"))
    world.kube.create(pod_manifest("other", app="other"))
    world.start_controller(FAST)
    eventually(lambda: assigned_states(world) == {"web-default-web-id": "Assigned"})
    web, other = running_pod(world, "web"), running_pod(world, "other")
    node = web["spec"]["nodeName"]
    assert other["spec"]["nodeName"] == node

    env = base_env(NODE_NAME=node)
    command = run(
        "nmi",
        "--kubeconfig",
        str(world.kube.kubeconfig_path),
        "--imds-url",
        world.imds_url(node),
        "--port",
        "0",
        "--probe-port",
        "0",
        "--pending-timeout",
        "1",
        env=env,
        name="nmi",
    )
    tokens, probes = command.wait_for(ENDPOINTS).groups()
    eventually(lambda: httpx.get(f"{probes}/readyz").status_code == 200)

    answer = token_request(tokens, web["status"]["podIP"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["client_id"] == identity.client_id
    assert world.azure.verify_access_token(body["access_token"], "https://vault.azure.net")

    # A pod without a binding gets no token: after --pending-timeout, "not ready" (its
    # assignment might have been in flight); an address that is no pod, 403.
    pending = token_request(tokens, other["status"]["podIP"])
    assert pending.status_code == 404, pending.text
    assert pending.json()["error"] == "identity_not_ready"
    stranger = token_request(tokens, "127.0.0.99")
    assert stranger.status_code == 403, stranger.text
    assert "access_token" not in pending.text + stranger.text

    metrics = httpx.get(f"{probes}/metrics").text
    assert 'podidentity_nmi_requests_total{route="token",status="200"} 1.0' in metrics
    assert 'podidentity_nmi_requests_total{route="token",status="403"} 1.0' in metrics
    assert 'podidentity_nmi_requests_total{route="token",status="404"} 1.0' in metrics
    assert httpx.get(f"{probes}/healthz").status_code == 200

    assert command.terminate(signal.SIGTERM) == 0
    output = command.stdout + command.stderr
    assert body["access_token"] not in output
    assert "eyJ" not in output
    assert "Traceback" not in output
    assert f"token proxy for node {node} stopped" in command.stderr
    # Without --iptables the rules to install were printed, for the port it listened on.
    assert "iptables -t nat -N podidentity-nmi" in command.stdout
    port = tokens.rsplit(":", 1)[1]
    assert f"-j DNAT --to-destination 127.0.0.1:{port}" in command.stdout


# -- --iptables, with a fake iptables program ------------------------------------------------


@pytest.fixture
def fake_iptables(tmp_path: Path) -> dict[str, str]:
    """Environment that puts the fake ``iptables`` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "iptables"
    program.write_text(f"#!{sys.executable}\n" + FAKE_IPTABLES.read_text())
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_IPTABLES_STATE": str(tmp_path / "nat.json"),
        "FAKE_IPTABLES_LOG": str(tmp_path / "iptables.log"),
    }


@pytest.fixture
def cluster() -> Iterator[KubeEmulator]:
    with KubeEmulator() as kube:
        yield kube


def nat_table(env: dict[str, str]) -> dict[str, list[list[str]]]:
    path = Path(env["FAKE_IPTABLES_STATE"])
    table: dict[str, list[list[str]]] = json.loads(path.read_text()) if path.exists() else {}
    return table


def iptables(env: dict[str, str], *args: str) -> None:
    """Run the fake iptables as an administrator would."""
    import subprocess

    subprocess.run(["iptables", *args], env={**os.environ, **env}, check=True)


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_iptables_installs_keeps_and_removes_the_redirect(
    cluster: KubeEmulator, fake_iptables: dict[str, str], run: Callable[..., Command]
) -> None:
    port = free_port()
    env = base_env(**fake_iptables, NODE_NAME="node-0")
    command = run(
        "nmi",
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "--imds-url",
        "http://127.0.0.1:9",
        "--port",
        str(port),
        "--probe-port",
        "0",
        "--iptables",
        "--iptables-target",
        "10.240.0.4",
        "--pod-cidr",
        "10.244.0.0/16",
        "--iptables-interval",
        "0.1",
        env=env,
        name="nmi",
    )
    command.wait_for("installed in nat chain podidentity-nmi")
    dnat = [
        "-p", "tcp", "-d", "169.254.169.254/32", "--dport", "80", "!", "-s", "127.0.0.1/32",
        "-j", "DNAT", "--to-destination", f"10.240.0.4:{port}",
    ]  # fmt: skip
    jump = ["-s", "10.244.0.0/16", "-j", "podidentity-nmi"]
    expected = {"podidentity-nmi": [dnat, ["-j", "RETURN"]], "PREROUTING": [jump]}
    assert {k: v for k, v in nat_table(fake_iptables).items() if v} == expected

    # Someone flushes PREROUTING: the jump comes back.
    iptables(fake_iptables, "-t", "nat", "-D", "PREROUTING", *jump)
    eventually(lambda: nat_table(fake_iptables)["PREROUTING"] == [jump])
    # Someone empties the chain: its rules come back.
    iptables(fake_iptables, "-t", "nat", "-F", "podidentity-nmi")
    eventually(lambda: nat_table(fake_iptables)["podidentity-nmi"] == expected["podidentity-nmi"])
    command.wait_for("the redirect was incomplete and has been restored")

    assert command.terminate(signal.SIGTERM) == 0
    table = nat_table(fake_iptables)
    assert "podidentity-nmi" not in table
    assert table["PREROUTING"] == []
    log = Path(fake_iptables["FAKE_IPTABLES_LOG"]).read_text().splitlines()
    calls = [json.loads(line) for line in log]
    assert calls[-6:] == [
        ["-t", "nat", "-C", "PREROUTING", *jump],
        ["-t", "nat", "-D", "PREROUTING", *jump],
        ["-t", "nat", "-C", "PREROUTING", *jump],
        ["-t", "nat", "-S", "podidentity-nmi"],
        ["-t", "nat", "-F", "podidentity-nmi"],
        ["-t", "nat", "-X", "podidentity-nmi"],
    ]
    assert command.stdout == ""  # nothing printed: the rules were installed instead
    assert "Traceback" not in command.stderr


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_iptables_failing_at_start_is_a_clear_error(
    cluster: KubeEmulator, fake_iptables: dict[str, str], run: Callable[..., Command]
) -> None:
    env = base_env(**fake_iptables, FAKE_IPTABLES_DENY="1", NODE_NAME="node-0")
    command = run(
        "nmi",
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "--imds-url",
        "http://127.0.0.1:9",
        "--port",
        str(free_port()),
        "--probe-port",
        "0",
        "--iptables",
        env=env,
        name="nmi",
    )
    assert command.process.wait(60) == 1
    command.close()
    assert "iptables -t nat -N podidentity-nmi failed (exit 1)" in command.stderr
    assert "Permission denied (you must be root)" in command.stderr
    assert "NET_ADMIN" in command.stderr
    assert "Traceback" not in command.stderr


def test_a_taken_port_is_a_clear_error(cluster: KubeEmulator) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["nmi", "--node", "node-0", "--kubeconfig", str(cluster.kubeconfig_path)]
        # 0.0.0.0 is a fine listen address without --iptables (it got as far as binding).
        args += ["--listen-address", "0.0.0.0", "--port", str(port), "--probe-port", "0"]  # noqa: S104
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "cannot listen" in result.output
    assert "Address already in use" in result.output
    assert "Traceback" not in result.output
