"""docs/benchmarks.md shows the measured figures; the renderer and the spread check work."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks import render
from tests.benchmarks.harness import Case, Suite


def test_the_doc_shows_the_committed_results() -> None:
    assert render.check() == []
    assert {p.stem for p in render.RESULTS.glob("*.json")} >= {"kube", "models"}


def _suite_json(scale: float) -> dict[str, Any]:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def work(seconds: float) -> None:
        now[0] += seconds

    suite = Suite("demo", clock=clock, collect=lambda: None, min_run=0.001, rounds=5)
    suite.compare(
        "decode",
        Case("ours", lambda: work(0.004 * scale)),
        Case("json.loads (C)", lambda: work(0.001)),
        note="10 objects",
    )
    suite.measure("parse", lambda: work(0.002))
    return suite.to_json()


def test_render_doc_replaces_only_the_blocks(tmp_path: Path) -> None:
    data = _suite_json(1.0)
    text = "intro\n<!-- bench:demo -->\nold table\n<!-- /bench:demo -->\noutro\n"
    rendered = render.render_doc(text, {"demo": data})
    assert rendered.startswith("intro\n<!-- bench:demo -->\n| scenario |")
    assert rendered.endswith("<!-- /bench:demo -->\noutro\n")
    assert "old table" not in rendered
    assert "| decode (10 objects) | **ours** | 4.00 ms (4.00 ms to 4.00 ms) | |" in rendered
    assert "| | baseline: json.loads (C) | 1.00 ms" in rendered
    assert "| **4.00** (4.00 to 4.00) |" in rendered
    assert "| parse | alone (no baseline) | 2.00 ms (2.00 ms to 2.00 ms) | |" in rendered
    assert render.render_doc(rendered, {"demo": data}) == rendered

    doc = tmp_path / "benchmarks.md"
    results = tmp_path / "results"
    results.mkdir()
    (results / "demo.json").write_text(json.dumps(data))
    doc.write_text(text)
    assert render.check(doc, results) != []
    assert render.main(["--doc", str(doc), "--results", str(results)]) == 0
    assert render.check(doc, results) == []
    changed = copy.deepcopy(data)
    changed["results"][0]["ratios"][0]["median"] = 5.0
    (results / "demo.json").write_text(json.dumps(changed))
    assert any("does not show the figures" in p for p in render.check(doc, results))
    assert render.main(["--check", "--doc", str(doc), "--results", str(results)]) == 1


def test_a_block_without_results_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"no missing\.json"):
        render.render_doc("<!-- bench:missing -->\n<!-- /bench:missing -->\n", {})


def test_spread_is_the_largest_distance_from_each_ratios_median(tmp_path: Path) -> None:
    runs = [{"a": 2.0, "b": 1.0}, {"a": 2.2, "b": 1.0}, {"a": 1.9, "b": 1.5}]
    result = render.spread(runs)
    assert result["a"] == (2.0, pytest.approx(0.1))
    assert result["b"] == (1.0, pytest.approx(0.5))

    for index, scale in enumerate((1.0, 1.1, 0.95)):
        directory = tmp_path / f"run{index}"
        directory.mkdir()
        (directory / "demo.json").write_text(json.dumps(_suite_json(scale)))
    dirs = [str(tmp_path / f"run{i}") for i in range(3)]
    assert render.ratios(_suite_json(1.0)) == {"demo: decode / json.loads (C)": pytest.approx(4.0)}
    assert render.main(["--spread", *dirs]) == 0
    assert render.main(["--spread", *dirs, "--tolerance", "0.05"]) == 1
