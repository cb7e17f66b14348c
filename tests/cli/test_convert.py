"""``podidentity convert``: stdout, --in-place (atomic, all or nothing), stdin, idempotence."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from podidentity.cli import main
from podidentity.models import load_documents, validate_documents
from tests.models.test_convert import MANIFESTS, SEED, documents


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, env=env)


def test_help_says_comments_are_lost() -> None:
    result = run("convert", "--help")
    assert result.exit_code == 0
    assert "comments and formatting are lost" in " ".join(result.stdout.split())
    assert "--in-place" in result.stdout
    assert "--label-selector" in result.stdout


def test_the_seed_to_stdout(seed: Path) -> None:
    result = run("convert", str(seed))
    assert result.exit_code == 0
    converted = documents(result.stdout)
    assert [d["metadata"]["name"] for d in converted] == [
        "my-identity",
        "my-identity-binding",
        "demo",
    ]
    assert converted[1]["spec"] == {"azureIdentity": "my-identity", "selector": "my_app"}
    assert validate_documents(converted) == []
    assert result.stderr.splitlines() == [
        f"{seed}:1: document 1: AzureIdentity my_identity: spec.Type: field 'Type' -> 'type'",
        f"{seed}:1: document 1: AzureIdentity my_identity: spec.ResourceID: field "
        "'ResourceID' -> 'resourceID'",
        f"{seed}:1: document 1: AzureIdentity my_identity: spec.ClientID: field "
        "'ClientID' -> 'clientID'",
        f"{seed}:1: document 1: AzureIdentity my_identity: metadata.name: value "
        "'my_identity' -> 'my-identity'",
        f"{seed}:10: document 2: AzureIdentityBinding my_identity_binding: spec.AzureIdentity: "
        "field 'AzureIdentity' -> 'azureIdentity'",
        f"{seed}:10: document 2: AzureIdentityBinding my_identity_binding: spec.Selector: "
        "field 'Selector' -> 'selector'",
        f"{seed}:10: document 2: AzureIdentityBinding my_identity_binding: spec.azureIdentity: "
        "value 'my_identity' -> 'my-identity'",
        f"{seed}:10: document 2: AzureIdentityBinding my_identity_binding: metadata.name: "
        "value 'my_identity_binding' -> 'my-identity-binding'",
        "converted 1 file: 8 changes",
    ]
    assert seed.read_text() == SEED, "stdout mode does not touch the file"


def test_converted_output_validates_and_converts_to_itself(seed: Path, tmp_path: Path) -> None:
    first = run("convert", str(seed)).stdout
    out = tmp_path / "out.yaml"
    out.write_text(first)
    assert run("validate", str(out)).exit_code == 0
    again = run("convert", str(out))
    assert again.stdout == first
    assert again.stderr == "nothing to convert: already in the v1 form\n"


def test_stdin_and_label_selector_from_the_environment(seed: Path) -> None:
    result = run(
        "convert", "-", stdin=seed.read_text(), env={"PODIDENTITY_CONVERT_LABEL_SELECTOR": "1"}
    )
    assert result.exit_code == 0
    binding = documents(result.stdout)[1]
    assert binding["spec"] == {
        "azureIdentity": "my-identity",
        "labelSelector": {"matchLabels": {"aadpodidbinding": "my_app"}},
    }
    assert (
        "-:10: document 2: AzureIdentityBinding my_identity_binding: spec.selector: field "
        "'selector' -> 'labelSelector.matchLabels.aadpodidbinding'"
    ) in result.stderr


def test_upstream_manifests_pass_through(tmp_path: Path) -> None:
    result = run("convert", *map(str, MANIFESTS))
    assert result.exit_code == 0
    assert result.stderr == "nothing to convert: already in the v1 form\n"
    expected = [d for p in MANIFESTS for d in documents(p.read_text())]
    assert documents(result.stdout) == expected


def test_in_place_rewrites_only_changed_files(seed: Path, tmp_path: Path) -> None:
    current = tmp_path / "current.yaml"
    current.write_text("# a comment kept: this file needs nothing\n" + MANIFESTS[2].read_text())
    seed.chmod(0o640)
    before = current.stat()
    result = run("convert", "--in-place", str(seed), str(current))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "rewrote 1 file: 8 changes"
    assert validate_documents([d.data for d in load_documents(seed.read_text())]) == []
    assert seed.stat().st_mode & 0o777 == 0o640
    assert current.stat().st_ino == before.st_ino
    assert current.read_text().startswith("# a comment kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.yaml", "seed.yaml"]
    again = run("convert", "--in-place", str(seed), env={})
    assert again.stderr == "nothing to convert: already in the v1 form\n"


def test_in_place_from_the_environment(seed: Path) -> None:
    result = run("convert", str(seed), env={"PODIDENTITY_CONVERT_IN_PLACE": "true"})
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "name: my_identity" not in seed.read_text()


def test_nothing_is_written_when_a_file_does_not_parse(seed: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\n"
        "metadata: {name: x_y}\nspec: {ClientID: 5}\n---\nkind: [\n"
    )
    result = run("convert", "--in-place", str(seed), str(broken))
    assert result.exit_code == 1
    assert seed.read_text() == SEED
    assert result.stderr.splitlines() == [
        f"error: {broken}: document 2: invalid YAML: expected the node content, but found "
        "'<stream end>' at line 7, column 1",
        "nothing converted: fix the errors above first",
    ]
    broken.write_text(broken.read_text().split("---")[0])
    result = run("convert", "--in-place", str(seed), str(broken))
    assert result.exit_code == 1
    assert seed.read_text() == SEED
    assert result.stderr.splitlines()[0] == (
        f"error: {broken}:1: document 1: AzureIdentity x_y: spec.ClientID: "
        "expected a string, found an integer"
    )


def test_renames_that_merge_two_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {name: a-b}\n"
        "---\napiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata: {name: A_B}\n"
    )
    text = path.read_text()
    result = run("convert", "--in-place", str(path))
    assert result.exit_code == 1
    assert "would be renamed to 'a-b', the new name of AzureIdentity 'a-b' too" in result.stderr
    assert path.read_text() == text


def test_usage_errors(seed: Path, tmp_path: Path) -> None:
    assert run("convert", "--in-place", "-", stdin=SEED).exit_code == 2
    missing = run("convert", str(tmp_path / "missing.yaml"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.output
    assert run("convert", "-", "-", stdin=SEED).exit_code == 2


def _small_files() -> None:  # pragma: no cover - runs in the child process
    # Writes beyond 2 KiB fail with EFBIG (instead of SIGXFSZ killing the process).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def _unmeasured_without_bytecode() -> dict[str, str]:
    """The environment of a child whose files may not exceed 2 KiB.

    Under that limit CPython's bytecode cache writes would be cut short and still renamed into
    place (its raw write ignores a short count): truncated .pyc files that every later process
    fails to import ("marshal data too short"). And coverage, measuring subprocesses under
    ``nox -s tests``, could not save its data file at exit and would print a traceback.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def test_a_failed_write_changes_no_file(seed: Path, tmp_path: Path) -> None:
    # A real write failure in a real process: the second file's output is too large to write.
    big = tmp_path / "big.yaml"
    big.write_text(
        SEED.replace("my_", "my_long_name_")
        + "---\n"
        + "\n".join(
            f"kind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{k: {'v' * 40}}}\n---"
            for i in range(30)
        )
    )
    size = big.stat().st_size
    assert size < 4096  # the original fits, written before the limit applies
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    done = subprocess.run(
        [sys.executable, "-m", "podidentity", "convert", "--in-place", str(seed), str(big)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_small_files,
        env=_unmeasured_without_bytecode(),
    )
    assert done.returncode == 1, done.stderr
    assert "no file was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_in_place_through_a_symlink_and_a_file_named_twice(seed: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(seed)
    result = run("convert", "--in-place", str(link), str(link))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == "rewrote 1 file: 8 changes"
    assert link.is_symlink()
    converted = documents(seed.read_text())
    assert [d["metadata"]["name"] for d in converted] == [
        "my-identity",
        "my-identity-binding",
        "demo",
    ]


def test_check_writes_nothing_and_fails_when_something_would_change(seed: Path) -> None:
    result = run("convert", "--check", str(seed))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == "would convert 1 file: 8 changes"
    assert seed.read_text() == SEED
    assert run("convert", "--check", "--in-place", str(seed)).exit_code == 2
    assert run("convert", str(seed), env={"PODIDENTITY_CONVERT_IN_PLACE": "1"}).exit_code == 0
    clean = run("convert", str(seed), env={"PODIDENTITY_CONVERT_CHECK": "1"})
    assert clean.exit_code == 0
    assert clean.stderr == "nothing to convert: already in the v1 form\n"
