"""The complete example of ``docs/testing-kube.md`` runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[3] / "docs" / "testing-kube.md"


def test_every_python_block_of_the_page_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict[str, object] = {"__name__": "docs_page"}
    for block in blocks:
        if block.lstrip().startswith("kube."):
            continue  # fragments that use the `kube` of a surrounding example
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102


def test_docs_example_runs() -> None:
    text = DOC.read_text()
    snippet = re.search(r"## A complete example.*?```python\n(.*?)```", text, re.DOTALL)
    assert snippet is not None
    exec(compile(snippet.group(1), str(DOC), "exec"), {"__name__": "docs_example"})  # noqa: S102
