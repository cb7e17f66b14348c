"""``podidentity demo``: green with the secure defaults, red (naming the step) when a guarantee
is switched off, and never a token or the secret's value in what it prints."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from podidentity.cli import main
from podidentity.errors import ConfigError
from podidentity.testing.default_world import DEFAULT_SECRET_VALUE
from podidentity.testing.demo import DemoOptions, DemoReport, StepResult
from podidentity.testing.demo._cluster import _reason
from podidentity.testing.demo._steps import STEPS

# A JWT (what every token the demo handles is): base64url header starting {"  + payload.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")

TITLES = [step.title for step in STEPS]


def no_secrets(text: str) -> None:
    assert DEFAULT_SECRET_VALUE not in text
    assert not JWT.search(text), JWT.search(text)


def test_the_demo_walks_through_and_every_step_behaves() -> None:
    result = CliRunner().invoke(main, ["demo"])
    output = result.output
    assert result.exit_code == 0, output
    assert "Realism: ARM identity writes take 0.5 s" in output
    # Each step is announced as it runs, with its outcome and timing ...
    for number, title in enumerate(TITLES, 1):
        assert f"[{number:>2}/{len(TITLES)}] {title}" in output
    assert len(re.findall(r"-> ok: .* \(\d+\.\d\d s\)", output)) == len(TITLES)
    # ... what the walkthrough saw ...
    assert "AzureAssignedIdentity default/demo-default-demo-aks-pod-id: Assigned" in output
    assert "a Key Vault token for app-identity" in output
    assert f"({len(DEFAULT_SECRET_VALUE)} characters; value not shown)" in output
    # ... each glitch refused at the controller and at the token proxy ...
    for pod in ("other/demo", "default/copycat", "default/worker-batch"):
        assert f"controller: no identity for {pod}" in output
        assert f"no AzureAssignedIdentity names {pod}" in output
    assert output.count("token proxy: refused (identity_not_ready") == 3
    assert "worker-api gets a token for worker-identity" in output
    assert "client_id of worker-identity" in output
    assert "msi_res_id of the kubelet identity (on every node): refused (forbidden" in output
    # ... and the summary table, one row per step.
    table = output[output.index("  step  ") :]
    for number, title in enumerate(TITLES, 1):
        assert re.search(rf"^\s*{number}  {re.escape(title)}\s", table, re.MULTILINE), title
    assert f"{len(TITLES)}/{len(TITLES)} steps behaved as expected" in output
    no_secrets(output)


def test_with_upstreams_cluster_wide_bindings_glitch_1_fails_and_the_exit_code_says_so() -> None:
    result = CliRunner().invoke(main, ["demo", "--json", "--unsafe-cluster-wide-bindings"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["options"]["cluster_wide_bindings"] is True
    statuses = {step["key"]: step["status"] for step in report["steps"]}
    assert statuses.pop("other-namespace") == "failed"
    assert set(statuses.values()) == {"ok"}, statuses  # the other guarantees still hold
    failed = next(step for step in report["steps"] if step["key"] == "other-namespace")
    assert "the controller decided to give pod other/demo: demo-aks-pod-id" in failed["outcome"]
    assert (
        "Step 8 (Glitch 1: a pod in another namespace) did not behave as expected" in result.stderr
    )
    assert f"{len(TITLES) - 1}/{len(TITLES)} steps behaved as expected" in result.stderr
    no_secrets(result.output)


def test_a_failed_walkthrough_step_skips_the_steps_built_on_it() -> None:
    # Nothing answers within a microsecond: step 1 fails, and nothing after it can run.
    result = CliRunner().invoke(main, ["demo", "--json", "--timeout", "0.000001"])
    assert result.exit_code == 1, result.output
    steps = json.loads(result.stdout)["steps"]
    assert steps[0]["status"] == "failed"
    assert "within 1e-06 s" in steps[0]["outcome"]
    assert {step["status"] for step in steps[1:]} == {"skipped"}
    assert "Step 1 (Start a sandbox) did not behave as expected" in result.stderr


def test_options_come_from_the_environment_and_are_checked() -> None:
    result = CliRunner().invoke(main, ["demo"], env={"PODIDENTITY_DEMO_OPERATION_DURATION": "0"})
    assert result.exit_code == 2
    assert "--operation-duration" in result.output
    help_text = CliRunner().invoke(main, ["demo", "--help"]).output
    for option in ("--json", "--pending-timeout", "--unsafe-cluster-wide-bindings"):
        assert option in help_text


# -- the pure parts: the report, the options, reading the proxy's answer ----------------------


def result(number: int, status: str) -> StepResult:
    return StepResult(
        number=number,
        key=f"step-{number}",
        title=f"Step {number}",
        expected="refused",
        status=status,  # type: ignore[arg-type]
        outcome="refused" if status == "ok" else "a token was issued",
        seconds=0.25,
        details=("said",),
    )


def test_the_report_is_ok_only_when_every_step_is() -> None:
    green = DemoReport(options=DemoOptions(), steps=(result(1, "ok"), result(2, "ok")), seconds=1)
    assert green.ok
    assert green.failures == ()
    red = DemoReport(
        options=DemoOptions(),
        steps=(result(1, "ok"), result(2, "failed"), result(3, "skipped")),
        seconds=1,
    )
    assert not red.ok
    assert [step.number for step in red.failures] == [2]
    document = red.to_dict()
    assert document["ok"] is False
    assert [s["status"] for s in document["steps"]] == ["ok", "failed", "skipped"]
    assert document["steps"][1]["outcome"] == "a token was issued"


def test_options_refuse_a_zero_wait() -> None:
    with pytest.raises(ConfigError, match="pending_timeout must be positive"):
        DemoOptions(pending_timeout=0)
    assert "IMDS lags 0.5 s" in DemoOptions().describe()


def test_the_proxy_answer_is_read_out_of_azure_identity_message() -> None:
    message = (
        "ManagedIdentityCredential authentication unavailable, no response from the IMDS "
        "endpoint. Token request error: (forbidden) pod default/demo has no identity with "
        "client_id 'abc'; the client IDs assigned to it are: def"
    )
    assert _reason(message) == "forbidden: pod default/demo has no identity with client_id 'abc'"
    assert _reason("something else entirely") == "something else entirely"


def test_the_command_loads_the_emulators_only_when_the_demo_runs() -> None:
    # `podidentity mic` and `podidentity nmi` run in production images: registering the demo
    # must not make them import the emulators (seconds of start-up, and code they never use).
    # Read from the module's own top level: importing it would import the whole CLI package.
    module = importlib.import_module("podidentity.cli.demo")  # the attribute is the command
    source = Path(str(module.__file__)).read_text()
    eager = [
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        for node in ast.parse(source).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert "click" in eager
    assert not [name for name in eager if name and name.startswith("podidentity.testing")]
