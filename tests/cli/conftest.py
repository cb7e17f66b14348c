"""Fixtures and helpers for the command tests: manifest files written into a temporary
directory; real ``python -m podidentity`` processes, watched through their output, and the
emulated world they run against."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from podidentity.testing import Sandbox
from tests.models.test_convert import SEED
from tests.waiting import eventually

GROUP_VERSION = "aadpodidentity.k8s.io/v1"
PROBES = re.compile(r"probes and metrics on (http://\S+) ")
ENDPOINTS = r"tokens on (http://[^,\s]+), probes and metrics on (http://\S+)"
TOKEN_PATH = "/metadata/identity/oauth2/token"
QUERY = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}


class Command:
    """``python -m podidentity ARGS`` as a child process; its output goes to files."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str], workdir: Path, name: str
    ) -> None:
        self.args = list(args)
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podidentity", *self.args],
            env=dict(env),
            stdout=self._stdout,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
        )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, pattern: str, within: float = 120.0) -> re.Match[str]:
        """The first match of ``pattern`` in stderr (the log), once it appears."""

        def found() -> re.Match[str] | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited with {self.process.returncode} before {pattern!r}:\n{self.stderr}"
                )
            return re.search(pattern, self.stderr)

        match: re.Match[str] = eventually(found, within)
        return match

    def terminate(self, sig: int = signal.SIGTERM, within: float = 60.0) -> int:
        """Send ``sig`` and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(within)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stdout.close()
        self._stderr.close()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Command]]:
    """Start commands; any still running at the end of the test are killed."""
    started: list[Command] = []

    def start(*args: str, env: Mapping[str, str], name: str = "command") -> Command:
        command = Command(args, env, tmp_path, f"{name}-{len(started)}")
        started.append(command)
        return command

    yield start
    for command in started:
        command.close()


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would point a command elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PODIDENTITY_", "AZURE_", "KUBE")) and k != "NODE_NAME"
    }
    env.update(extra)
    return env


@pytest.fixture
def world() -> Iterator[Sandbox]:
    """A sandbox whose ARM writes and IMDS updates take effect at once, with one node."""
    with Sandbox(operation_duration=0, propagation_delay=0) as sandbox:
        sandbox.add_node_pool("pool", count=1)
        yield sandbox


def identity_manifest(name: str, resource_id: str, client_id: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AzureIdentity",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": 0, "resourceID": resource_id, "clientID": client_id},
    }


def binding_manifest(name: str, identity: str, selector: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AzureIdentityBinding",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"azureIdentity": identity, "selector": selector},
    }


def pod_manifest(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }


def assigned_states(world: Sandbox) -> dict[str, str]:
    return {
        o["metadata"]["name"]: (o.get("status") or {}).get("status", "")
        for o in world.kube.list("azureassignedidentities", namespace="default")
    }


def controller_principal(world: Sandbox) -> Any:
    """A service principal with the roles the controller needs (docs/reconciler.md)."""
    app = world.azure.world.add_service_principal("podidentity-mic")
    world.azure.world.grant_role(app, world.node_resource_group_id, "Virtual Machine Contributor")
    world.azure.world.add_resource_group("podidentity")
    world.azure.world.grant_role(app, world.identity_resource_group_id, "Managed Identity Operator")
    return app


def running_pod(world: Sandbox, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        pod: dict[str, Any] = world.kube.get("pods", name, namespace="default")
        return pod if pod.get("status", {}).get("podIP") and pod["spec"].get("nodeName") else None

    found: dict[str, Any] = eventually(ready)
    return found


def token_request(url: str, source_ip: str) -> httpx.Response:
    """A pod's IMDS request, sent from its own address."""
    transport = httpx.HTTPTransport(local_address=source_ip)
    with httpx.Client(transport=transport, timeout=60) as client:
        return client.get(f"{url}{TOKEN_PATH}", params=QUERY, headers={"Metadata": "true"})


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """The seed article's legacy manifests (capitalised fields, names with underscores)."""
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    return path
