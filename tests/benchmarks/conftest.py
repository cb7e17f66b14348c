"""The ``bench`` fixture and the ``--quick`` / ``--bench-out`` options of ``nox -s bench``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.benchmarks.harness import QUICK_ENV, Suite, quick

RESULTS = Path(__file__).parent / "results"
QUICK_RESULTS = Path(__file__).parents[2] / ".bench"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchmarks")
    group.addoption(
        "--quick",
        action="store_true",
        help="smoke-run the benchmarks: fewer rounds, smaller data, results to .bench/",
    )
    group.addoption(
        "--bench-out",
        metavar="DIR",
        help="write the benchmark JSON here instead of tests/benchmarks/results/",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--quick", default=False):
        os.environ[QUICK_ENV] = "1"


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest) -> Iterator[Suite]:
    """A :class:`Suite` named after the module (``bench_kube`` -> ``kube``).

    When the module ends its table is printed and its JSON written: to ``--bench-out`` if
    given, else to ``.bench/`` in quick mode and ``tests/benchmarks/results/`` otherwise.
    Results of a partial run (``-k``) replace only the scenarios that ran.
    """
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("bench_")
    suite = Suite(name)
    yield suite
    out = request.config.getoption("--bench-out", default=None)
    directory = Path(out) if out else (QUICK_RESULTS if quick() else RESULTS)
    path = suite.write(directory, merge=True)
    print()
    print(suite.table())
    print(f"results: {path}")
