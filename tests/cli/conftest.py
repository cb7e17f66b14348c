"""Fixtures for the command tests: manifest files written into a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.test_convert import SEED


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """The seed article's legacy manifests (capitalised fields, names with underscores)."""
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    return path
