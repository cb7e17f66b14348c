"""The guide's examples run, in order, as one script; so do the example scripts."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_models_guide_examples_run() -> None:
    text = (ROOT / "docs" / "models.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/models.md", "exec"), namespace)  # noqa: S102


def test_quickstart_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(ROOT / "examples" / "models_quickstart.py"), run_name="__main__")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "suggestion: 'demo-aks-pod-id'" in out
    assert "AzureIdentity federated\n    no problems" in out


def test_crd_check_command_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "podidentity.crds", "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout
