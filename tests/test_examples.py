"""The examples run, and keep secrets out of their output.

The README's main job, ``podidentity demo``, is tested in ``tests/cli/test_demo.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def test_models_quickstart_reports_problems() -> None:
    out = run("models_quickstart.py")
    assert "demo-aks-pod-id" in out  # the suggested DNS-1123 name
    assert "matches app=web,tier=a: True" in out
