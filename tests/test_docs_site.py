"""The documentation site: every page in the nav, every cited test real, the examples running."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def nav_pages(entries: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages.extend(nav_pages(value))
        else:
            pages.append(value)
    return pages


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)


def test_every_page_is_in_the_nav_once() -> None:
    # mkdocs only reports a page missing from the nav; the strict build fails on it through
    # `validation.omitted_files`, and this test says which page without building the site.
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["validation"]["omitted_files"] == "warn"
    listed = nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), "a page is in the nav twice"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(pages - set(listed)) == [], "pages missing from mkdocs.yml's nav"


CITED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
CITED_IN_PARENS = re.compile(r"`(tests/[\w/]+\.py)` \(([^)]*)\)")


def cited_tests(page: str) -> list[tuple[str, str]]:
    """(file, test) pairs a page cites; test is "" when it cites the whole file."""
    text = (DOCS / page).read_text()
    found = [(path, name or "") for path, name in CITED.findall(text)]
    for path, inside in CITED_IN_PARENS.findall(text):
        found += [(path, name) for name in re.findall(r"`(test_\w+)`", inside)]
    return found


@pytest.mark.parametrize("page", ["security.md"])
def test_every_cited_test_exists(page: str) -> None:
    cited = cited_tests(page)
    assert len(cited) >= 40
    for path, name in cited:
        source = ROOT / path
        assert source.is_file(), f"{page} cites {path}, which does not exist"
        if name:
            assert re.search(rf"^(async )?def {name}\(", source.read_text(), re.MULTILINE), (
                f"{page} cites {path}::{name}, which does not exist"
            )


def test_getting_started_examples_run() -> None:
    blocks = [b for b in python_blocks("getting-started.md") if not b.startswith("# Not run")]
    assert blocks
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/getting-started.md", "exec"), namespace)  # noqa: S102


def test_testing_your_code_example_runs() -> None:
    from podidentity.testing import AzureEmulator

    (block,) = python_blocks("testing-your-code.md")
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/testing-your-code.md", "exec"), namespace)  # noqa: S102
    with AzureEmulator() as emulator:
        namespace["test_reads_the_password_with_the_pods_identity"](emulator)


def test_no_escaped_pipe_inside_code() -> None:
    # In a table, Python-Markdown splits on `|` even inside code, and `\|` renders with its
    # backslash: write the alternatives in words or in another column.
    offending = [
        f"{page.relative_to(DOCS)}:{number}"
        for page in DOCS.rglob("*.md")
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if re.search(r"`[^`]*\\\|[^`]*`", line)
    ]
    assert offending == []
