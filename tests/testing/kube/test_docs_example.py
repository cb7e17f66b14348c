"""The complete example of ``docs/testing-kube.md`` runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[3] / "docs" / "testing-kube.md"


def test_docs_example_runs() -> None:
    text = DOC.read_text()
    snippet = re.search(r"## A complete example.*?```python\n(.*?)```", text, re.DOTALL)
    assert snippet is not None
    exec(compile(snippet.group(1), str(DOC), "exec"), {"__name__": "docs_example"})  # noqa: S102
