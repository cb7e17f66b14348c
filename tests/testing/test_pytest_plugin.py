"""The plugin as users load it: fixtures work, and a swallowed foreign connection fails the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import kubernetes

from podidentity.testing import AzureEmulator, KubeEmulator


def test_emulator_fixtures_run_and_stop(
    kube_emulator: KubeEmulator, azure_emulator: AzureEmulator
) -> None:
    api = kubernetes.config.new_client_from_config(config_file=str(kube_emulator.kubeconfig_path))
    with api:
        names = [n.metadata.name for n in kubernetes.client.CoreV1Api(api).list_namespace().items]
    assert "default" in names
    assert azure_emulator.world.default_subscription_id


def run_pytest(tmp_path: Path, test_source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test_source))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "podidentity.testing.pytest_plugin",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_a_swallowed_foreign_connection_fails_the_run(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        """
        import socket

        def test_retrying_client_hides_the_error():
            try:
                socket.create_connection(("169.254.169.254", 80), timeout=1)
            except OSError:
                pass  # a retrying SDK would swallow this and carry on
        """,
    )
    assert done.returncode == 1, done.stdout
    assert "1 passed" in done.stdout
    assert "podidentity network guard refused" in done.stdout
    assert "169.254.169.254" in done.stdout


def test_a_clean_run_passes(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path,
        """
        def test_uses_the_fixture(kube_emulator):
            assert kube_emulator.url.startswith("http://127.0.0.1:")
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
