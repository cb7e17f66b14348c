"""Render ``docs/benchmarks.md``'s tables from the benchmarks' JSON, and check reproducibility.

``nox -s bench`` writes ``tests/benchmarks/results/<suite>.json`` and then runs this module,
which rewrites every block between ``<!-- bench:SUITE -->`` and ``<!-- /bench:SUITE -->`` in
the doc from ``SUITE.json``; the prose around the blocks is left alone. The normal test suite
runs ``--check`` (``tests/benchmarks/test_render.py``), so the documented figures are always
the measured ones.

Commands (from the repository root)::

    python -m tests.benchmarks.render            # rewrite the doc's tables
    python -m tests.benchmarks.render --check    # exit 1 if the doc differs from the JSON
    python -m tests.benchmarks.render --spread RUN1 RUN2 RUN3
        # each RUN a --bench-out directory: every ratio's median over the runs and how far
        # the runs are from it; exit 1 if one is further than --tolerance (default 15%)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import format_seconds

ROOT = Path(__file__).parents[2]
RESULTS = Path(__file__).parent / "results"
DOC = ROOT / "docs" / "benchmarks.md"
_BLOCK = re.compile(r"(<!-- bench:(?P<suite>[\w-]+) -->\n).*?(<!-- /bench:(?P=suite) -->)", re.S)

__all__ = ["check", "ratios", "render_doc", "render_suite", "spread"]


def _time(timing: Mapping[str, Any]) -> str:
    return (
        f"{format_seconds(timing['median'])} "
        f"({format_seconds(timing['min'])} to {format_seconds(timing['max'])})"
    )


def render_suite(data: Mapping[str, Any]) -> str:
    """One suite's JSON as a Markdown table and a line saying where it was measured."""
    machine = data["machine"]
    lines = [
        "| scenario | measured | median (min-max) per call | ratio: median (min-max) |",
        "|---|---|---|---|",
    ]
    rounds: set[int] = set()
    for result in data["results"]:
        scenario = result["name"] + (f" ({result['note']})" if result.get("note") else "")
        if result["kind"] == "measurement":
            timing = result["timing"]
            rounds.add(len(timing["runs"]))
            lines.append(f"| {scenario} | alone (no baseline) | {_time(timing)} | |")
            continue
        subject = result["subject"]
        rounds.add(len(subject["runs"]))
        lines.append(f"| {scenario} | **{subject['name']}** | {_time(subject)} | |")
        by_name = {r["baseline"]: r for r in result["ratios"]}
        for baseline in result["baselines"]:
            ratio = by_name[baseline["name"]]
            lines.append(
                f"| | baseline: {baseline['name']} | {_time(baseline)} "
                f"| **{ratio['median']:.2f}** ({ratio['min']:.2f} to {ratio['max']:.2f}) |"
            )
    counts = "/".join(str(n) for n in sorted(rounds))
    lines.append("")
    lines.append(
        f"Measured {data['measured'][:10]} with {machine['implementation']} "
        f"{machine['python']} on {machine['system']} {machine['machine']} "
        f"({machine['cpus']} CPUs); clock `{data['clock']}`; {counts} interleaved rounds."
    )
    return "\n".join(lines) + "\n"


def _load(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def render_doc(text: str, suites: Mapping[str, Mapping[str, Any]]) -> str:
    """``text`` with every ``bench:SUITE`` block replaced by that suite's table.

    Raises:
        ValueError: A block names a suite with no results.
    """

    def block(match: re.Match[str]) -> str:
        suite = match.group("suite")
        if suite not in suites:
            raise ValueError(
                f"docs/benchmarks.md has a bench:{suite} block but there is no {suite}.json; "
                "run `nox -s bench`"
            )
        return match.group(1) + render_suite(suites[suite]) + match.group(3)

    return _BLOCK.sub(block, text)


def check(doc: Path = DOC, results: Path = RESULTS) -> list[str]:
    """Problems that make the doc differ from the results (empty when it matches)."""
    text = doc.read_text(encoding="utf-8")
    suites = _load(results)
    problems = []
    named = set(_BLOCK_NAMES.findall(text))
    for suite in sorted(set(suites) - named):
        problems.append(f"{results / (suite + '.json')} has no bench:{suite} block in {doc}")
    if render_doc(text, suites) != text:
        problems.append(
            f"{doc} does not show the figures of {results}; run "
            "`python -m tests.benchmarks.render` (or `nox -s bench`)"
        )
    return problems


_BLOCK_NAMES = re.compile(r"<!-- bench:([\w-]+) -->")


def ratios(data: Mapping[str, Any]) -> dict[str, float]:
    """Every ratio of one suite: ``"scenario / baseline"`` -> median ratio."""
    found = {}
    for result in data["results"]:
        for ratio in result.get("ratios", []):
            found[f"{data['suite']}: {result['name']} / {ratio['baseline']}"] = ratio["median"]
    return found


def spread(runs: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """Per ratio: its median over the runs, and the largest relative distance from it."""
    names: Iterable[str] = runs[0].keys()
    result = {}
    for name in names:
        values = [run[name] for run in runs if name in run]
        median = statistics.median(values)
        result[name] = (median, max(abs(v - median) / median for v in values))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.render")
    parser.add_argument("--check", action="store_true", help="fail if the doc is out of date")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--spread", type=Path, nargs="+", metavar="RUN")
    parser.add_argument("--tolerance", type=float, default=0.15)
    args = parser.parse_args(argv)
    if args.spread:
        runs: list[dict[str, float]] = []
        for directory in args.spread:
            merged: dict[str, float] = {}
            for data in _load(directory).values():
                merged.update(ratios(data))
            runs.append(merged)
        worst = 0.0
        for name, (median, distance) in spread(runs).items():
            flag = "" if distance <= args.tolerance else "  <-- over tolerance"
            values = ", ".join(f"{run[name]:.2f}" for run in runs if name in run)
            print(f"{distance * 100:5.1f}%  median {median:7.2f}  [{values}]  {name}{flag}")
            worst = max(worst, distance)
        print(f"largest distance from a ratio's median: {worst * 100:.1f}%")
        return 0 if worst <= args.tolerance else 1
    if args.check:
        problems = check(args.doc, args.results)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    text = args.doc.read_text(encoding="utf-8")
    args.doc.write_text(render_doc(text, _load(args.results)), encoding="utf-8")
    print(f"rewrote the benchmark tables of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
