"""``podidentity secrets``: in-process with click's runner, and as real processes for exec and
watch (they replace or outlive the caller). The processes inherit the emulated world's
environment, so they use ManagedIdentityCredential against the node's emulated IMDS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from podidentity.cli import main
from tests.keyvault.conftest import VaultWorld

SECRET = "cli-s3cret-value"


def _spec(tmp_path: Path, world: VaultWorld, objects: list[dict[str, object]]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps({"vault": world.vault, "objects": objects}))  # JSON is YAML
    return path


def test_help_lists_the_secrets_commands() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    assert "secrets" in top.output
    for command in ("fetch", "exec", "watch"):
        result = runner.invoke(main, ["secrets", command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--spec" in result.output


def test_fetch_writes_files_with_owner_only_modes(world: VaultWorld, tmp_path: Path) -> None:
    world.set("db-password", SECRET)
    world.set("config", "a: 1")
    spec = _spec(tmp_path, world, [{"name": "db-password"}, {"name": "config", "mode": "0644"}])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["--log-format", "json", "secrets", "fetch", "--spec", str(spec), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "db-password").read_text() == SECRET
    assert (out / "db-password").stat().st_mode & 0o777 == 0o600
    assert (out / "config").stat().st_mode & 0o777 == 0o644
    assert SECRET not in result.output
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"level": "INFO", "logger": "podidentity.keyvault"}.items() <= logged[-1].items()
    assert logged[-1]["message"] == f"wrote 2 files to {out}"


def test_fetch_options_from_the_environment(world: VaultWorld, tmp_path: Path) -> None:
    world.set("a", SECRET)
    spec = _spec(tmp_path, world, [{"name": "a", "alias": "A"}])
    env = {
        "PODIDENTITY_SECRETS_FETCH_SPEC": str(spec),
        "PODIDENTITY_SECRETS_FETCH_ENV_FILE": str(tmp_path / "app.env"),
    }
    result = CliRunner().invoke(main, ["secrets", "fetch"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "app.env").read_text() == f"A='{SECRET}'\n"


def test_fetch_failure_names_each_object_and_writes_nothing(
    world: VaultWorld, tmp_path: Path
) -> None:
    world.set("a", SECRET)
    spec = _spec(tmp_path, world, [{"name": "a"}, {"name": "missing"}])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["secrets", "fetch", "--spec", str(spec), "--out", str(out)])
    assert result.exit_code == 1
    assert f"error: secret 'missing' in vault '{world.vault}': 404 SecretNotFound" in result.output
    assert not out.exists()


def test_a_bad_spec_is_a_usage_error(world: VaultWorld, tmp_path: Path) -> None:
    spec = _spec(tmp_path, world, [{"name": "a"}, {"name": "b", "alias": "a"}])
    result = CliRunner().invoke(main, ["secrets", "fetch", "--spec", str(spec), "--out", "x"])
    assert result.exit_code == 2
    assert "also an output of secret 'a'" in result.output


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "podidentity", *args]


def test_exec_runs_the_program_with_values_only_in_its_environment(
    world: VaultWorld, tmp_path: Path
) -> None:
    world.set("db-password", SECRET)
    spec = _spec(tmp_path, world, [{"name": "db-password", "alias": "DB_PASSWORD"}])
    program = "import os, sys; sys.stdout.write(os.environ['DB_PASSWORD'])"
    done = subprocess.run(
        _cli("secrets", "exec", "--spec", str(spec), "--", sys.executable, "-c", program),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == SECRET
    assert SECRET not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # nothing on disk


def test_exec_with_an_alias_that_is_no_variable_name(world: VaultWorld, tmp_path: Path) -> None:
    world.set("db-password", SECRET)
    spec = _spec(tmp_path, world, [{"name": "db-password"}])
    result = CliRunner().invoke(main, ["secrets", "exec", "--spec", str(spec), "--", "true"])
    assert result.exit_code == 1
    assert "set an alias such as 'DB_PASSWORD'" in result.output


APP_WAITING_FOR_SIGNALS = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
print("ready", flush=True)
while True:
    number = signal.sigwait([signal.SIGUSR1])
    print(signal.Signals(number).name, flush=True)
"""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_watch_rewrites_a_rotated_secret_and_stops_on_sigterm(
    world: VaultWorld, tmp_path: Path
) -> None:
    world.set("a", "first")
    spec = _spec(tmp_path, world, [{"name": "a"}])
    out = tmp_path / "out"
    # The application: told by a signal that its files changed.
    app = subprocess.Popen(
        [sys.executable, "-c", APP_WAITING_FOR_SIGNALS],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert app.stdout is not None
    assert app.stdout.readline() == "ready\n"
    process = subprocess.Popen(
        _cli(
            "secrets",
            "watch",
            "--spec",
            str(spec),
            "--out",
            str(out),
            "--interval",
            "1",
            "--notify-pid",
            str(app.pid),
            "--notify-signal",
            "USR1",
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (out / "a").exists(), "the first write")
        assert (out / "a").read_text() == "first"
        assert app.stdout.readline() == "SIGUSR1\n"
        world.set("a", "second")
        _wait_for(lambda: (out / "a").read_text() == "second", "the rotated value")
        assert app.stdout.readline() == "SIGUSR1\n"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        app.kill()
        app.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "second" not in stderr
    assert "first" not in stderr
    assert os.listdir(out).count("a") == 1


def test_exec_of_a_missing_program_is_a_clear_error(world: VaultWorld, tmp_path: Path) -> None:
    world.set("a", SECRET)
    spec = _spec(tmp_path, world, [{"name": "a", "alias": "A"}])
    missing = str(tmp_path / "no-such-program")
    result = CliRunner().invoke(main, ["secrets", "exec", "--spec", str(spec), "--", missing])
    assert result.exit_code == 1
    assert f"cannot run {missing!r}: No such file or directory" in result.output
