"""The example in docs/testing-keyvault.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from azure.keyvault.secrets._shared import http_challenge_cache

DOC = Path(__file__).parents[3] / "docs" / "testing-keyvault.md"


def test_the_documented_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1
    # The example sets these itself; monkeypatch puts the originals back afterwards.
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    try:
        exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "docs_example"})  # noqa: S102
    finally:
        http_challenge_cache.clear()
