"""``podidentity validate``: findings with file, document, path and fix; exit codes; JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from podidentity.cli import main
from tests.models.test_convert import MANIFESTS


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env=env)


def test_help_says_what_it_does() -> None:
    result = run("validate", "--help")
    assert result.exit_code == 0
    assert "'-' reads stdin" in result.stdout
    assert "--output [text|json]" in result.stdout


def test_the_seed_manifests_fail_with_every_problem(seed: Path) -> None:
    result = run("validate", str(seed))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{seed}:1: document 1: AzureIdentity my_identity: spec.Type: error: legacy spelling "
        "'Type': the v1 name is 'type'; aad-pod-identity since v1.6 prunes the capitalised "
        "field, so the value is lost there"
    )
    assert lines[1] == "    fix: use 'type'; run podidentity convert to fix it"
    paths = [line.split(": ")[3] for line in lines if ": error: " in line]
    assert paths == [
        "spec.Type",
        "spec.ResourceID",
        "spec.ClientID",
        "metadata.name",
        "spec.AzureIdentity",
        "spec.Selector",
        "metadata.name",
        "spec.azureIdentity",
    ]
    assert f"{seed}:10: document 2: AzureIdentityBinding my_identity_binding: metadata.name" in (
        result.stdout
    )
    assert f"{seed}:18: document 3: Pod demo: skipped (not an aad-pod-identity kind)" in lines
    assert lines[-1] == "FAILED: 8 errors, 0 warnings in 1 file (2 checked, 1 skipped)"


def test_json_output(seed: Path) -> None:
    result = run("validate", "--output", "json", str(seed))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert (report["errors"], report["warnings"], report["checked"]) == (8, 0, 2)
    first = report["findings"][0]
    assert first == {
        "file": str(seed),
        "document": 1,
        "line": 1,
        "object": "AzureIdentity my_identity",
        "path": "spec.Type",
        "severity": "error",
        "message": first["message"],
        "suggestion": "type",
        "convertible": True,
        "fix": "use 'type'; run podidentity convert to fix it",
    }
    assert report["skipped"] == [
        {"file": str(seed), "document": 3, "line": 18, "item": None, "object": "Pod demo"}
    ]


def test_output_from_the_environment(seed: Path) -> None:
    result = run("validate", str(seed), env={"PODIDENTITY_VALIDATE_OUTPUT": "json"})
    assert json.loads(result.stdout)["errors"] == 8


def test_stdin(seed: Path) -> None:
    result = run("validate", "-", stdin=seed.read_text())
    assert result.exit_code == 1
    assert result.stdout.startswith("-:1: document 1: AzureIdentity my_identity: spec.Type")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_upstream_manifests(path: Path) -> None:
    result = run("validate", "--output", "json", str(path))
    report = json.loads(result.stdout)
    placeholders = any("placeholder" in f["message"] for f in report["findings"])
    assert result.exit_code == (1 if placeholders else 0)
    assert report["errors"] == sum(f["severity"] == "error" for f in report["findings"])
    assert all(f["severity"] == "warning" for f in report["findings"] if not placeholders)


def test_warnings_pass_unless_strict() -> None:
    binding = next(p for p in MANIFESTS if p.name == "deploy_demo_aadpodidentitybinding.yaml")
    relaxed = run("validate", str(binding))
    assert relaxed.exit_code == 0
    assert "spec.azureIdentity: warning: names no AzureIdentity" in relaxed.stdout
    assert relaxed.stdout.splitlines()[-1] == (
        "ok: 0 errors, 1 warning in 1 file (1 checked, 0 skipped)"
    )
    assert run("validate", "--strict", str(binding)).exit_code == 1
    assert run("validate", str(binding), env={"PODIDENTITY_VALIDATE_STRICT": "1"}).exit_code == 1


def test_files_are_checked_together(tmp_path: Path) -> None:
    identity = next(p for p in MANIFESTS if p.name == "deploy_demo_aadpodidentity.yaml")
    binding = next(p for p in MANIFESTS if p.name == "deploy_demo_aadpodidentitybinding.yaml")
    result = run("validate", "--output", "json", str(identity), str(binding))
    paths = {(f["file"], f["path"]) for f in json.loads(result.stdout)["findings"]}
    assert paths == {(str(identity), "spec.resourceID"), (str(identity), "spec.clientID")}


def test_invalid_yaml_is_a_finding(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: AzureIdentity\nmetadata: {name: [x\n")
    result = run("validate", str(bad))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{bad}: document 1: error: invalid YAML: ")


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output
    assert run("validate").exit_code == 2


def test_a_real_process_exit_status(seed: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "podidentity", "validate", "-"],
        input=seed.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "FAILED: 8 errors" in done.stdout
    assert done.stderr == ""
