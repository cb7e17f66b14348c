"""A pytest plugin: fixtures for the emulators and the sandbox, and the network guard.

Installing podidentity registers it with pytest (a ``pytest11`` entry point): no
``conftest.py`` is needed. Where plugin autoloading is off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``),
load it with ``pytest_plugins = ["podidentity.testing.pytest_plugin"]`` in a ``conftest.py`` or
``-p podidentity.testing.pytest_plugin``; either is a no-op when it is already loaded. Then:

- the fixtures ``kube_emulator``, ``azure_emulator`` and ``sandbox`` give each test a running
  :class:`~podidentity.testing.KubeEmulator`, :class:`~podidentity.testing.AzureEmulator` or
  :class:`~podidentity.testing.Sandbox`, stopped after it; ``sandbox_world`` fills the
  ``sandbox`` with the default world of ``podidentity sandbox``
  (:func:`~podidentity.testing.populate_default_world`). Define a fixture of the same name in
  your ``conftest.py`` to change their scope or options;
- the network guard (:data:`~podidentity.testing.guard`) refuses any connection to, or name
  lookup of, anything outside 127.0.0.0/8, and fails the run even when the code under test
  swallowed the error (retrying clients do). It is off unless asked for, since the plugin loads
  into every pytest run where podidentity is installed: for the whole run with
  ``--podidentity-network-guard`` or the ini option ``podidentity_network_guard = true``; for
  one test with the ``network_guard`` fixture.

Importing this module is cheap: the emulators are imported by the fixtures that use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from podidentity.testing.network_guard import NetworkGuard, guard

if TYPE_CHECKING:
    from podidentity.testing import AzureEmulator, DefaultWorld, KubeEmulator, Sandbox

_INI = "podidentity_network_guard"
_FLAG = "--podidentity-network-guard"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--podidentity-network-guard`` and the ``podidentity_network_guard`` ini option."""
    help_text = "refuse connections outside 127.0.0.0/8 during the whole run (podidentity)"
    parser.addini(_INI, help_text, type="bool", default=False)
    parser.getgroup("podidentity").addoption(
        _FLAG, action="store_true", default=False, help=help_text
    )


def pytest_configure(config: pytest.Config) -> None:
    """Switch the network guard on, when asked for, before any test module is imported."""
    if config.getoption(_FLAG) or config.getini(_INI):
        guard.install()


def _report(session: pytest.Session, violations: list[str]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line("podidentity network guard refused:", red=True)
        for what in sorted(set(violations)):
            reporter.write_line(f"  - {what}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a connection was refused, even if the code under test hid the error."""
    if guard.violations:
        _report(session, guard.violations)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def network_guard() -> Iterator[NetworkGuard]:
    """The network guard, on for this test; the test fails if it refused anything.

    Refusals are raised inside the code that tried to connect, and also checked after the test,
    so an error a retrying client swallowed still fails it.
    """
    was_enabled, before = guard.enabled, len(guard.violations)
    guard.install()
    try:
        yield guard
    finally:
        guard.enabled = was_enabled
    refused = guard.violations[before:]
    if refused:
        pytest.fail(f"podidentity network guard refused: {'; '.join(sorted(set(refused)))}")


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


@pytest.fixture
def sandbox_world(sandbox: Sandbox) -> DefaultWorld:
    """The ``sandbox`` with the default world: nodes, identities, a vault, controller, proxies.

    See :func:`~podidentity.testing.populate_default_world`; it stops with ``sandbox``.
    """
    from podidentity.testing import populate_default_world

    return populate_default_world(sandbox)
