"""``podidentity sandbox`` as a real process, driven by kubectl and by other processes.

The issue's "done when": with the sandbox running, the seed's steps (its legacy manifests put
right by ``podidentity convert``) work with kubectl against
its kubeconfig, a separate process started with ``podidentity sandbox env`` for the pod gets a
token with an unmodified ``ManagedIdentityCredential`` and reads the vault's secret with
``SecretClient``, and the same process as another pod is refused.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from podidentity.cli import main
from podidentity.testing.default_world import DEFAULT_SECRET_VALUE
from tests.kubectl import KUBECTL

# Azure without artificial delays, and a token proxy that refuses an unassigned pod after 2 s
# instead of 60: these tests are about the command, not about Azure's timing.
FAST = [
    "--operation-duration=0",
    "--propagation-delay=0",
    "--no-throttling",
    "--pending-timeout=2",
]


def _base_env(home: Path) -> dict[str, str]:
    """A clean environment: nothing from this test process's Azure or proxy settings."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}


@attrs.define
class Running:
    process: subprocess.Popen[str]
    state_dir: Path
    summary: list[str]
    home: Path
    log: Path

    @property
    def state(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.state_dir / "sandbox.json").read_text())
        return loaded

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.communicate(timeout=120)
        return self.process.returncode, self.log.read_text()


def start_sandbox(home: Path, *args: str) -> Running:
    """Start the command; return once it printed its "ready" line (its summary follows)."""
    # Its log goes to a file: a pipe nobody reads would fill up and block the sandbox.
    log = home / f"sandbox-{len(list(home.glob('sandbox-*.log')))}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "podidentity", "sandbox", *FAST, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_base_env(home),
        )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("  stop "):
            break
    if not lines or not lines[0].startswith("ready: "):
        process.kill()
        process.communicate(timeout=60)
        raise AssertionError(f"the sandbox did not become ready: {lines}\n{log.read_text()}")
    state_dir = Path(lines[0].split(", state ")[1]).parent
    return Running(process, state_dir, lines, home, log)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("home")
    state_dir = tmp_path_factory.mktemp("state") / "sandbox"
    sandbox = start_sandbox(home, "--state-dir", str(state_dir))
    token = (state_dir / "kubeconfig").read_text().split("token: ", 1)[1].split()[0]
    try:
        yield sandbox
    finally:
        code, err = sandbox.stop()
        assert code == 0, err
        # Its whole log: no secret value, no token.
        assert DEFAULT_SECRET_VALUE not in err
        assert token not in err
        # A directory the user named stays, saying the sandbox stopped; nothing in it points
        # at the dead servers or carries the admin token any more.
        assert sandbox.state["state"] == "stopped"
        assert sorted(p.name for p in state_dir.iterdir()) == ["sandbox.json"]


def kubectl(run: Running, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(run.state_dir / "kubeconfig"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_base_env(run.home),
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def pod_env(run: Running, pod: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podidentity", "sandbox", "env", pod, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_base_env(run.home), "PODIDENTITY_SANDBOX_STATE_DIR": str(run.state_dir)},
    )


def parse_env(output: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in output.splitlines()]
    assert all(len(pair) == 2 for pair in pairs), output
    return dict(pairs)  # type: ignore[arg-type]


# -- the seed, end to end --------------------------------------------------------------------

# The seed article's manifests as written then: capitalised fields, names with underscores.
SEED = """\
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: app_identity
spec:
  Type: 0
  ResourceID: {resource_id}
  ClientID: {client_id}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: app_identity_binding
spec:
  AzureIdentity: app_identity
  Selector: seed-app
---
apiVersion: v1
kind: Pod
metadata:
  name: seed-app
  labels:
    aadpodidbinding: seed-app
spec:
  containers:
  - name: app
    image: mcr.microsoft.com/oss/azure/aad-pod-identity/demo:v1.8.17
---
apiVersion: v1
kind: Pod
metadata:
  name: bystander
spec:
  containers:
  - name: app
    image: mcr.microsoft.com/oss/azure/aad-pod-identity/demo:v1.8.17
"""

# What a pod's application does, with no knowledge of the sandbox: the default credential
# chain pieces, unmodified, configured by the environment alone.
APP = """\
import sys
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

vault, name, expected = sys.argv[1:4]
credential = ManagedIdentityCredential(retry_total=0)
try:
    credential.get_token("https://vault.azure.net/.default")
except ClientAuthenticationError as err:
    print("refused:", err.message.splitlines()[0])
    sys.exit(3)
value = SecretClient(vault, credential).get_secret(name).value
print("secret matches" if value == expected else "secret differs")
"""


def run_app(run: Running, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    vault = run.state["vaults"][0]
    return subprocess.run(
        [sys.executable, "-c", APP, vault["url"], vault["secrets"][0], DEFAULT_SECRET_VALUE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_base_env(run.home), **env},
    )


def convert(manifests: str) -> str:
    """``podidentity convert -``: the seed's manifests in today's form."""
    done = subprocess.run(
        [sys.executable, "-m", "podidentity", "convert", "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_seed_steps_with_kubectl_then_a_process_acts_as_the_pod(running: Running) -> None:
    identity = running.state["identities"][0]
    seed = SEED.format(resource_id=identity["resourceId"], client_id=identity["clientId"])
    # As written in the seed, the cluster refuses them (invalid names, unknown fields).
    refused = subprocess.run(
        [
            str(KUBECTL),
            "--kubeconfig",
            str(running.state_dir / "kubeconfig"),
            *("create", "--dry-run=server", "-f", "-"),
        ],
        input=seed,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_base_env(running.home),
    )
    assert refused.returncode != 0
    assert "app_identity" in refused.stderr
    created = kubectl(running, "create", "-f", "-", stdin=convert(seed))
    assert "azureidentitybinding.aadpodidentity.k8s.io/app-identity-binding created" in created
    kubectl(running, "wait", "--for=condition=Ready", "pod/seed-app", "pod/bystander")
    # The controller (running inside the sandbox) assigns the identity to the pod's node.
    kubectl(
        running,
        "wait",
        "--for=jsonpath={.status.status}=Assigned",
        "azureassignedidentity/seed-app-default-app-identity",
        "--timeout=120s",
    )

    printed = pod_env(running, "seed-app")
    assert printed.returncode == 0, printed.stderr
    env = parse_env(printed.stdout)
    pod_ip = kubectl(running, "get", "pod", "seed-app", "-o", "jsonpath={.status.podIP}")
    assert f"acting as pod default/seed-app (IP {pod_ip}" in printed.stderr
    assert env["AZURE_POD_IDENTITY_AUTHORITY_HOST"].startswith("http://127.0.0.1:")
    assert env["REQUESTS_CA_BUNDLE"] == str(running.state_dir / "azure-ca.pem")

    exported = pod_env(running, "seed-app", "--export")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == "".join(f"export {line}\n" for line in printed.stdout.splitlines())

    app = run_app(running, env)
    assert app.returncode == 0, app.stdout + app.stderr
    assert app.stdout.strip() == "secret matches"
    assert DEFAULT_SECRET_VALUE not in printed.stdout + printed.stderr

    # The same program as a pod no binding selects: the token proxy refuses it.
    other = pod_env(running, "bystander")
    assert other.returncode == 0, other.stderr
    refused = run_app(running, parse_env(other.stdout))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refused:" in refused.stdout
    assert "no assigned identity" in refused.stdout

    # The sandbox's log (flushed line by line) shows both decisions, and no secret.
    log = running.log.read_text()
    assert f"fetched a token of client {identity['clientId']}" in log
    assert "refused GET /metadata/identity/oauth2/token" in log
    assert DEFAULT_SECRET_VALUE not in log


# -- the state files -------------------------------------------------------------------------


def test_sandbox_json_lists_every_address_and_no_secret(running: Running) -> None:
    state = running.state
    assert state["state"] == "running"
    assert state["pid"] == running.process.pid
    kube = state["kubernetes"]
    assert kube["server"].startswith("https://127.0.0.1:")
    assert Path(kube["kubeconfig"]) == running.state_dir / "kubeconfig"
    assert Path(kube["caBundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    azure = state["azure"]
    assert azure["authorityHost"] == "https://login.microsoftonline.com"
    assert azure["arm"]["host"] == "https://management.azure.com"
    assert Path(azure["caBundle"]).is_file()
    assert azure["environment"]["HTTPS_PROXY"] == azure["proxy"]
    assert len(azure["tenantId"]) == 36
    assert len(azure["subscriptionId"]) == 36

    nodes = {node["machine"]: node for node in state["nodes"]}
    assert sorted(nodes) == ["scaleSetInstance", "virtualMachine"]
    for node in nodes.values():
        assert node["imds"].startswith("http://127.0.0.1:")
        assert node["tokenProxy"].startswith("http://127.0.0.1:")
        assert "/providers/Microsoft.Compute/" in node["resourceId"]
    assert nodes["scaleSetInstance"]["instance"] == 0

    assert [i["name"] for i in state["identities"]] == ["app-identity", "worker-identity"]
    for identity in [*state["identities"], *state["federatedIdentities"]]:
        assert set(identity) >= {"name", "clientId", "resourceId", "principalId"}
    (federated,) = state["federatedIdentities"]
    assert federated["subject"] == "system:serviceaccount:default:workload"
    assert federated["issuer"] == kube["server"]
    (vault,) = state["vaults"]
    assert vault == {
        "name": "sandbox-vault",
        "url": "https://sandbox-vault.vault.azure.net/",
        "secrets": ["db-password"],
        "readers": ["app-identity", "workload-identity"],
    }

    raw = (running.state_dir / "sandbox.json").read_text()
    kubeconfig = (running.state_dir / "kubeconfig").read_text()
    token = kubeconfig.split("token: ", 1)[1].split()[0]
    for secret in (DEFAULT_SECRET_VALUE, token):
        assert secret not in raw
        assert secret not in "\n".join(running.summary)


def test_the_kubeconfig_is_the_admins_and_only_the_owner_reads_it(running: Running) -> None:
    path = running.state_dir / "kubeconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    nodes = kubectl(running, "get", "nodes", "-o", "name")
    assert sorted(nodes.split()) == sorted(f"node/{n['name']}" for n in running.state["nodes"])
    assert kubectl(running, "auth", "can-i", "delete", "nodes").strip() == "yes"


def test_the_summary_says_where_everything_is(running: Running) -> None:
    text = "\n".join(running.summary)
    assert f"kubeconfig {running.state_dir / 'kubeconfig'}" in running.summary[0]
    assert "https://sandbox-vault.vault.azure.net/" in text
    assert "podidentity sandbox env POD --export" in text


# -- errors ----------------------------------------------------------------------------------


def test_env_errors_name_the_problem_and_the_fix(running: Running) -> None:
    missing = pod_env(running, "no-such-pod")
    assert missing.returncode == 1
    assert "pod default/no-such-pod does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert missing.stdout == ""

    kubectl(
        running,
        "run",
        "unschedulable",
        "--image=example.com/app:1",
        "--overrides",
        json.dumps({"spec": {"nodeSelector": {"pool": "none-such"}}}),
    )
    pending = pod_env(running, "unschedulable")
    assert pending.returncode == 1
    assert "pod default/unschedulable is Pending, not Running" in pending.stderr

    other_namespace = pod_env(running, "seed-app", "-n", "elsewhere")
    assert other_namespace.returncode == 1
    assert "pod elsewhere/seed-app does not exist" in other_namespace.stderr


def test_a_second_sandbox_in_the_same_directory_is_refused(running: Running) -> None:
    result = CliRunner().invoke(main, ["sandbox", "--state-dir", str(running.state_dir)])
    assert result.exit_code == 1
    assert f"a sandbox already runs in {running.state_dir}" in result.output
    assert f"pid {running.process.pid}" in result.output


def test_env_without_a_running_sandbox(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["sandbox", "env", "pod", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"no sandbox in {tmp_path}" in result.output
    assert f"podidentity sandbox --state-dir {tmp_path}" in result.output

    state = {"formatVersion": 1, "state": "stopped", "pid": os.getpid(), "control": None}
    (tmp_path / "sandbox.json").write_text(json.dumps(state))
    result = runner.invoke(main, ["sandbox", "env", "pod", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "has stopped" in result.output

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    state.update(state="running", pid=int(gone.stdout), control="http://127.0.0.1:9")
    (tmp_path / "sandbox.json").write_text(json.dumps(state))
    result = runner.invoke(main, ["sandbox", "env", "pod", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not running (its process" in result.output


# -- stopping --------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_it_cleanly_and_its_temporary_directory_goes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    run = start_sandbox(tmp_path)
    assert run.state_dir.is_dir()
    assert run.state["state"] == "running"
    code, err = run.stop(sig)
    assert code == 0, err
    assert err.rstrip().endswith("stopped")
    assert "Traceback" not in err
    assert not run.state_dir.exists()


FEDERATED = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: workload
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentity
metadata:
  name: workload-identity
spec:
  type: 3
  clientID: {client_id}
  tenantID: {tenant_id}
---
apiVersion: aadpodidentity.k8s.io/v1
kind: AzureIdentityBinding
metadata:
  name: workload-identity-binding
spec:
  azureIdentity: workload-identity
  selector: workload
---
apiVersion: v1
kind: Pod
metadata:
  name: workload-app
  labels:
    aadpodidbinding: workload
spec:
  serviceAccountName: workload
  containers:
  - name: app
    image: example.com/app:1
"""


def test_the_federated_identity_works_through_the_token_proxy(running: Running) -> None:
    # Nothing goes on the VM: the proxy exchanges the pod's service-account token at Azure AD,
    # which trusts the sandbox cluster's issuer for default/workload.
    (federated,) = running.state["federatedIdentities"]
    kubectl(
        running,
        "create",
        "-f",
        "-",
        stdin=FEDERATED.format(
            client_id=federated["clientId"], tenant_id=running.state["azure"]["tenantId"]
        ),
    )
    kubectl(running, "wait", "--for=condition=Ready", "pod/workload-app")
    kubectl(
        running,
        "wait",
        "--for=jsonpath={.status.status}=Assigned",
        "azureassignedidentity/workload-app-default-workload-identity",
        "--timeout=120s",
    )
    printed = pod_env(running, "workload-app")
    assert printed.returncode == 0, printed.stderr
    app = run_app(running, parse_env(printed.stdout))
    assert app.returncode == 0, app.stdout + app.stderr
    assert app.stdout.strip() == "secret matches"


def test_help_of_both_commands() -> None:
    runner = CliRunner()
    run = runner.invoke(main, ["sandbox", "--help"])
    assert run.exit_code == 0
    for text in ("--state-dir", "PODIDENTITY_SANDBOX_STATE_DIR", "SIGTERM", "sandbox.json"):
        assert text in run.output
    env = runner.invoke(main, ["sandbox", "env", "--help"])
    assert env.exit_code == 0
    for text in ("POD", "--namespace", "--export", "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        assert text in env.output
