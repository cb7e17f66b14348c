"""A pytest plugin: the network guard, and fixtures for the emulators.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["podidentity.testing.pytest_plugin"]``
or on the command line with ``-p podidentity.testing.pytest_plugin``. Then:

- the run fails if any test connects to, or looks up, anything outside 127.0.0.0/8, even when
  the code under test swallowed the error (retrying clients do);
- the fixtures ``kube_emulator``, ``azure_emulator`` and ``sandbox`` give each test a running
  :class:`~podidentity.testing.KubeEmulator`, :class:`~podidentity.testing.AzureEmulator` or
  :class:`~podidentity.testing.Sandbox`, stopped after it. Define a fixture of the same name in
  your ``conftest.py`` to change their scope or options.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from podidentity.testing.network_guard import guard

if TYPE_CHECKING:
    from podidentity.testing import AzureEmulator, KubeEmulator, Sandbox


def pytest_configure(config: pytest.Config) -> None:
    """Switch the network guard on before any test module is imported."""
    guard.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a connection was refused, even if the code under test hid the error."""
    if guard.violations:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line("podidentity network guard refused:", red=True)
            for what in sorted(set(guard.violations)):
                reporter.write_line(f"  - {what}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def kube_emulator() -> Iterator[KubeEmulator]:
    """A running Kubernetes API emulator (plain HTTP, podidentity's CRDs installed)."""
    from podidentity.testing import KubeEmulator

    with KubeEmulator() as emulator:
        yield emulator


@pytest.fixture
def azure_emulator() -> Iterator[AzureEmulator]:
    """A running Azure emulator: one tenant with Azure AD, ARM, Key Vault and IMDS per node."""
    from podidentity.testing import AzureEmulator

    with AzureEmulator() as emulator:
        yield emulator


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A running :class:`~podidentity.testing.Sandbox` (Kubernetes and Azure, consistent)."""
    from podidentity.testing import Sandbox

    with Sandbox() as world:
        yield world
