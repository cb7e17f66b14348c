"""docs/cli-engines.md names every option of ``mic`` and ``nmi`` with the environment variable
that really sets it."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from podidentity.cli.mic import mic
from podidentity.cli.nmi import nmi

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli-engines.md"


def variables(command: click.Command) -> dict[str, str]:
    """Each option's variables as click resolves them under ``podidentity``."""
    found = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        if param.envvar:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        else:
            names = [f"PODIDENTITY_{command.name.upper()}_{param.name.upper()}"]  # type: ignore[union-attr]
        found[param.opts[0]] = " or ".join(names)
    return found


@pytest.mark.parametrize("command", [mic, nmi], ids=["mic", "nmi"])
def test_the_page_lists_every_option_with_its_variable(command: click.Command) -> None:
    listed = dict(
        re.findall(rf"^{command.name} (--[\w-]+) +(.+)$", PAGE.read_text(), flags=re.MULTILINE)
    )
    assert listed == variables(command)
    documented = PAGE.read_text()
    for option in listed:
        assert f"`{option}" in documented, f"{option} is not described on the page"
