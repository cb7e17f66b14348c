"""``podidentity mic``: the real command, in a child process, against a sandbox.

It reaches the Kubernetes emulator through the kubeconfig the emulator writes, and ARM and
Azure AD through the emulated Azure's environment (HTTPS_PROXY, the CA bundle) with the
controller's service principal in azure-identity's variables or in an AKS ``azure.json``.
"""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from click.testing import CliRunner

from podidentity.cli import main
from podidentity.cli.mic import mic
from podidentity.reconciler import ControllerSettings
from podidentity.testing import Sandbox
from tests.cli.conftest import (
    PROBES,
    Command,
    assigned_states,
    base_env,
    binding_manifest,
    controller_principal,
    identity_manifest,
    pod_manifest,
)
from tests.waiting import eventually

FAST = ["--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.2"]


def seed_identity(world: Sandbox, pod: str = "web") -> Any:
    identity = world.azure.world.add_managed_identity("web-id")
    world.kube.create(identity_manifest("web-id", identity.resource_id, identity.client_id))
    world.kube.create(binding_manifest("web-binding", "web-id", "web"))
    world.kube.create(pod_manifest(pod, aadpodidbinding="web"))
    return identity


def on_scale_set(world: Sandbox) -> set[str]:
    node = next(iter(world.nodes.values()))
    return set(world.azure.world.vmss(node.compute.name).user_assigned)


def lease(world: Sandbox) -> dict[str, Any]:
    """The controller Lease's spec; empty before a replica created it."""
    for item in world.kube.list("leases", namespace="default"):
        if item["metadata"]["name"] == "podidentity-controller":
            spec: dict[str, Any] = item["spec"]
            return spec
    return {}


def metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


# -- help, options, errors (in process) ----------------------------------------------------------


def test_help_describes_the_command_and_every_setting() -> None:
    result = CliRunner().invoke(main, ["mic", "--help"])
    assert result.exit_code == 0, result.output
    assert "Run the controller (MIC)" in result.output
    for flag in ("--kubeconfig", "--cloud-config", "--probe-port", "--no-leader-election"):
        assert flag in result.output
    top = CliRunner().invoke(main, ["--help"])
    assert " mic " in top.output
    assert " nmi " in top.output


def test_every_controller_setting_is_an_option() -> None:
    options = {param.name for param in mic.params}
    fields = {field.name for field in attrs.fields(ControllerSettings)}
    assert fields <= options, f"ControllerSettings fields without an option: {fields - options}"


def test_option_defaults_are_the_controllers_defaults() -> None:
    # The options repeat the settings' defaults for --help; they must not drift apart. An
    # option without a default (None, or repeatable) leaves the choice to the settings.
    params = {param.name: param for param in mic.params}
    for field in attrs.fields(ControllerSettings):
        param = params[field.name]
        if param.multiple or param.default is None:
            continue
        assert param.default == field.default, f"--{field.name.replace('_', '-')}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig '/nonexistent/kubeconfig' does"),
        (["--arm-batch-size", "500"], "Invalid value for '--arm-batch-size'"),
        (["--lease-duration", "2", "--renew-deadline", "5"], "lease_duration > renew_deadline"),
        (["--cloud", "Mars"], "unknown Azure cloud 'Mars'"),
        (["--mode", "sometimes"], "Invalid value for '--mode'"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_bad_options_are_usage_errors_without_traceback(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["mic", *args], env=base_env())
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_options_come_from_the_environment() -> None:
    env = base_env(PODIDENTITY_MIC_KUBECONFIG="/nonexistent/from-env")
    result = CliRunner().invoke(main, ["mic"], env=env)
    assert result.exit_code == 2
    assert "'/nonexistent/from-env' does not exist" in result.output


def test_cloud_config_problems_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "azure.json"
    broken.write_text("{not json")
    result = CliRunner().invoke(main, ["mic", "--cloud-config", str(broken)], env=base_env())
    assert result.exit_code == 2
    assert f"the cloud config {broken} is not valid JSON" in result.output
    incomplete = tmp_path / "sp.json"
    incomplete.write_text(json.dumps({"tenantId": "t", "aadClientSecret": "hunter2-secret"}))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("")
    result = CliRunner().invoke(
        main,
        ["mic", "--cloud-config", str(incomplete), "--kubeconfig", str(kubeconfig)],
        env=base_env(),
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--cloud-config'" in result.output
    assert "hunter2-secret" not in result.output


# -- the command running against a sandbox ---------------------------------------------------


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_mic_assigns_serves_probes_and_releases_the_lease_on_sigterm(
    world: Sandbox, run: Callable[..., Command]
) -> None:
    identity = seed_identity(world)
    app = controller_principal(world)
    # Options from the environment, credentials by azure-identity's conventions.
    env = base_env(
        **world.environ(),
        AZURE_CLIENT_ID=app.client_id,
        AZURE_CLIENT_SECRET=app.secret,
        AZURE_TENANT_ID=world.azure.tenant_id,
        PODIDENTITY_MIC_KUBECONFIG=str(world.kube.kubeconfig_path),
        PODIDENTITY_MIC_PROBE_ADDRESS="127.0.0.1",
        PODIDENTITY_MIC_PROBE_PORT="0",
        PODIDENTITY_MIC_HOLDER_IDENTITY="mic-0",
    )
    command = run("mic", *FAST, env=env, name="mic")
    probes = command.wait_for(PROBES.pattern).group(1)

    eventually(lambda: assigned_states(world) == {"web-default-web-id": "Assigned"})
    assert identity.resource_id.lower() in on_scale_set(world)
    world.check_kubelet_identity()
    assert lease(world)["holderIdentity"] == "mic-0"

    assert httpx.get(f"{probes}/healthz").status_code == 200
    eventually(lambda: httpx.get(f"{probes}/readyz").status_code == 200)

    def counted() -> str | None:
        text = httpx.get(f"{probes}/metrics").text
        return text if metric(text, 'podidentity_assignments{status="Assigned"}') == 1 else None

    text = eventually(counted)
    assert metric(text, "podidentity_leader") == 1
    assert metric(text, 'podidentity_arm_request_duration_seconds_count{operation="patch"}')
    assert metric(text, "podidentity_reconcile_duration_seconds_count")

    assert command.terminate(signal.SIGTERM) == 0
    assert lease(world)["holderIdentity"] == ""
    output = command.stdout + command.stderr
    assert "controller stopped" in command.stderr
    assert app.secret not in output
    assert "eyJ" not in output  # no JWT (access token) anywhere
    assert "Traceback" not in output


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_mic_takes_its_credential_from_an_aks_cloud_config(
    world: Sandbox, run: Callable[..., Command], tmp_path: Path
) -> None:
    identity = seed_identity(world)
    app = controller_principal(world)
    azure_json = tmp_path / "azure.json"
    azure_json.write_text(
        json.dumps(
            {
                "cloud": "AzurePublicCloud",
                "tenantId": world.azure.tenant_id,
                "subscriptionId": world.azure.world.default_subscription_id,
                "resourceGroup": world.node_resource_group,
                "aadClientId": app.client_id,
                "aadClientSecret": app.secret,
                "useManagedIdentityExtension": False,
            }
        )
    )
    env = base_env(**world.environ())
    command = run(
        "--log-format",
        "json",
        "mic",
        "--kubeconfig",
        str(world.kube.kubeconfig_path),
        "--cloud-config",
        str(azure_json),
        "--no-leader-election",
        "--probe-address",
        "127.0.0.1",
        "--probe-port",
        "0",
        env=env,
        name="mic",
    )
    command.wait_for("ARM credential: service principal from the cloud config")
    eventually(lambda: assigned_states(world) == {"web-default-web-id": "Assigned"})
    assert identity.resource_id.lower() in on_scale_set(world)
    assert command.terminate(signal.SIGINT) == 0
    assert app.secret not in command.stdout + command.stderr
    # --log-format json: every line of the log is one JSON object.
    logged = [json.loads(line) for line in command.stderr.splitlines()]
    assert {"level": "INFO", "logger": "podidentity.cli.mic"}.items() <= logged[-1].items()
    assert logged[-1]["message"] == "controller stopped"


@pytest.mark.timeout(300)  # child processes start slowly on a loaded machine
def test_two_replicas_elect_one_leader_and_hand_over_on_sigterm(
    world: Sandbox, run: Callable[..., Command]
) -> None:
    env = base_env(PODIDENTITY_MIC_KUBECONFIG=str(world.kube.kubeconfig_path))
    common = ["--mode", "managed", *FAST, "--probe-address", "127.0.0.1", "--probe-port", "0"]
    replicas = {
        name: run("mic", *common, "--holder-identity", name, env=env, name=name)
        for name in ("mic-a", "mic-b")
    }
    urls = {name: c.wait_for(PROBES.pattern).group(1) for name, c in replicas.items()}

    def leaders() -> dict[str, float | None]:
        return {
            name: metric(httpx.get(f"{url}/metrics").text, "podidentity_leader")
            for name, url in urls.items()
        }

    holder = eventually(lambda: lease(world).get("holderIdentity"))
    eventually(lambda: leaders()[holder] == 1)
    other = next(name for name in replicas if name != holder)
    assert leaders()[other] == 0
    for url in urls.values():
        eventually(lambda url=url: httpx.get(f"{url}/readyz").status_code == 200)

    # The leader stops cleanly and releases the lease; the other one takes over.
    assert replicas[holder].terminate(signal.SIGTERM) == 0
    eventually(lambda: lease(world).get("holderIdentity") == other)
    eventually(lambda: leaders_of(urls[other]) == 1)
    assert replicas[other].terminate(signal.SIGTERM) == 0
    assert lease(world)["holderIdentity"] == ""


def leaders_of(url: str) -> float | None:
    return metric(httpx.get(f"{url}/metrics").text, "podidentity_leader")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KUBECONFIG": "/nonexistent/from-kubeconfig-variable"},
            "kubeconfig '/nonexistent/from-kubeconfig-variable' does not exist",
        ),
        (
            {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"},
            "cannot load Kubernetes configuration from the in-cluster service account",
        ),
    ],
    ids=["KUBECONFIG", "in-cluster"],
)
def test_where_the_cluster_comes_from_without_kubeconfig(env: dict[str, str], message: str) -> None:
    cleared: dict[str, str | None] = {"KUBECONFIG": None, "KUBERNETES_SERVICE_HOST": None}
    result = CliRunner().invoke(main, ["mic", "--mode", "managed"], env={**cleared, **env})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_taken_probe_port_is_a_clear_error() -> None:
    from podidentity.testing import KubeEmulator

    with KubeEmulator() as kube, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["mic", "--kubeconfig", str(kube.kubeconfig_path), "--mode", "managed"]
        args += ["--probe-address", "127.0.0.1", "--probe-port", str(port)]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert f"cannot serve probes on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
