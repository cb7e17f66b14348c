"""A pytest plugin that fails the run if any test reaches beyond 127.0.0.0/8.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["podidentity.testing.pytest_plugin"]``
or on the command line with ``-p podidentity.testing.pytest_plugin``.
"""

from __future__ import annotations

import pytest

from podidentity.testing.network_guard import guard


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
