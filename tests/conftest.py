"""Shared fixtures; the network guard keeps every test on 127.0.0.0/8."""

from __future__ import annotations

pytest_plugins = ["podidentity.testing.pytest_plugin"]
