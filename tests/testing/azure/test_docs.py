"""Every ``python`` block of docs/testing-azure.md runs, in order."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_azure_emulator_guide_examples_run() -> None:
    text = (ROOT / "docs" / "testing-azure.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 3
    for number, block in enumerate(blocks, 1):
        namespace: dict[str, object] = {"__name__": f"docs_testing_azure_{number}"}
        exec(compile(block, f"docs/testing-azure.md#block{number}", "exec"), namespace)  # noqa: S102
