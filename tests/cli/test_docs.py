"""docs/cli-manifests.md shows real output: every example is run and compared."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from podidentity.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-manifests.md"
TEXT = DOC.read_text()
FILES = dict(re.findall(r'```yaml title="([\w.]+)"\n(.*?)```', TEXT, flags=re.DOTALL))
OUTPUTS = re.findall(r'```text title="(stdout|stderr) of: ([^"]+)"\n(.*?)```', TEXT, re.DOTALL)
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, content in FILES.items():
        (tmp_path / name).write_text(content)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_page_has_examples() -> None:
    assert set(FILES) == {"seed.yaml", "b.yaml"}
    assert len(OUTPUTS) >= 5
    assert len(PYTHON) == 1


@pytest.mark.parametrize(("stream", "command", "expected"), OUTPUTS, ids=lambda x: str(x)[:40])
def test_the_output_shown_is_the_output(
    workdir: Path, stream: str, command: str, expected: str
) -> None:
    args = shlex.split(command)
    assert args[0] == "podidentity"
    result = CliRunner().invoke(main, args[1:])
    assert getattr(result, stream) == expected


def test_the_python_example_runs(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(PYTHON[0], str(DOC), "exec"), {})  # noqa: S102
    out = capsys.readouterr().out
    assert "AzureIdentity my_identity: spec.Type: field 'Type' -> 'type'" in out
