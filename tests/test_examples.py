"""The README's main job and the other examples run, and keep secrets out of their output."""

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


def test_quickstart_runs_the_whole_flow_without_printing_the_secret() -> None:
    out = run("quickstart.py")
    assert "orders-7d4f9 (service account orders): granted" in out
    assert "copycat (service account intruder): refused" in out
    assert "identity type UserAssigned" in out
    assert "read secret db-password (21 characters; value not shown)" in out
    assert "correct-horse-battery" not in out
    assert out.rstrip().endswith("nothing left the machine")


def test_models_quickstart_reports_problems() -> None:
    out = run("models_quickstart.py")
    assert "demo-aks-pod-id" in out  # the suggested DNS-1123 name
    assert "matches app=web,tier=a: True" in out
