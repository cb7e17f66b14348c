"""The plugin as users load it: fixtures work, and a swallowed foreign connection fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import kubernetes
import pytest

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
            "--podidentity-network-guard",
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


def run_autoloaded(tmp_path: Path, test_source: str) -> subprocess.CompletedProcess[str]:
    """pytest as a user runs it: no conftest, no -p; the pytest11 entry point loads the plugin."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_source))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=env,
    )


def test_the_entry_point_gives_the_fixtures_with_no_conftest(tmp_path: Path) -> None:
    assert not list(tmp_path.glob("conftest.py"))
    done = run_autoloaded(
        tmp_path,
        """
        import kubernetes
        from azure.identity import ManagedIdentityCredential
        from azure.keyvault.secrets import SecretClient

        import pytest

        from podidentity.testing import Sandbox, guard
        from podidentity.testing.default_world import DEFAULT_SECRET_VALUE


        @pytest.fixture
        def sandbox():
            # Overrides the plugin's, as its docs say: Azure without delays, for this module.
            with Sandbox(operation_duration=0, propagation_delay=0, throttling=False) as world:
                yield world


        def test_the_guard_is_off_unless_asked_for():
            assert not guard.enabled


        def test_emulators(kube_emulator, azure_emulator):
            assert kube_emulator.url.startswith("http://127.0.0.1:")
            assert azure_emulator.world.default_subscription_id


        def test_the_sandbox_world(sandbox, sandbox_world, network_guard):
            assert network_guard.enabled
            with sandbox.kube_client() as api:
                nodes = kubernetes.client.CoreV1Api(api).list_node().items
            assert len(nodes) == 2
            app = sandbox_world.identities[0]
            sandbox.azure.world.assign_identities(sandbox_world.vm_node.compute, [app])
            with sandbox.on_node(sandbox_world.vm_node):
                credential = ManagedIdentityCredential(client_id=app.client_id)
                secret = SecretClient(sandbox_world.vault_url, credential).get_secret(
                    sandbox_world.secret_names[0]
                )
            assert secret.value == DEFAULT_SECRET_VALUE
        """,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_the_network_guard_fixture_fails_a_test_that_hid_a_refusal(tmp_path: Path) -> None:
    done = run_autoloaded(
        tmp_path,
        """
        import socket

        def test_hides_the_error(network_guard):
            try:
                socket.create_connection(("169.254.169.254", 80), timeout=1)
            except OSError:
                pass

        def test_after_it_the_guard_is_off_again():
            from podidentity.testing import guard
            assert not guard.enabled
        """,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # The fixture fails the test at teardown (an error), and the run as a whole.
    assert "2 passed, 1 error" in done.stdout
    assert "podidentity network guard refused" in done.stdout
    assert "169.254.169.254" in done.stdout


def test_the_project_loads_the_plugin_once(pytestconfig: pytest.Config) -> None:
    # tests/conftest.py names it and the entry point registers it: one registration, one name.
    manager = pytestconfig.pluginmanager
    plugin = manager.get_plugin("podidentity.testing.pytest_plugin")
    assert plugin is not None
    assert [name for name, p in manager.list_name_plugin() if p is plugin] == [
        "podidentity.testing.pytest_plugin"
    ]
