"""The command starts without loading the emulators: ``mic`` and ``nmi`` run in production."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_group_does_not_import_the_test_world() -> None:
    code = (
        "import sys, podidentity.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('podidentity.testing')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
