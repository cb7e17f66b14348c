"""The ``bench`` fixture and the ``--quick`` / ``--bench-out`` options of ``nox -s bench``."""

from __future__ import annotations

import gc
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A benchmark on a loaded machine outlasts the suite's 120 s per-test timeout.
    for item in items:
        if item.path.name.startswith("bench_") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(3600))


def results_directory(config: pytest.Config) -> Path:
    """Where a suite's JSON goes: ``--bench-out``, else ``.bench/`` (quick) or the results."""
    out = config.getoption("--bench-out", default=None)
    return Path(out) if out else (QUICK_RESULTS if quick() else RESULTS)


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest) -> Iterator[Suite]:
    """A :class:`Suite` named after the module (``bench_kube`` -> ``kube``).

    When the module ends its table is printed and its JSON written: to ``--bench-out`` if
    given, else to ``.bench/`` in quick mode and ``tests/benchmarks/results/`` otherwise.
    Results of a partial run (``-k``) replace only the scenarios that ran. Objects alive when
    the module starts are frozen (``gc.freeze``) for its duration. A module whose work waits
    (emulated latency, sockets) sets ``BENCH_CLOCK = time.perf_counter``: CPU time, the
    default, does not see waiting.
    """
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("bench_")
    clock = getattr(request.module, "BENCH_CLOCK", None)
    suite = Suite(name) if clock is None else Suite(name, clock=clock)
    # The harness collects garbage before every timed run; with everything imported so far
    # frozen (moved out of the collector's sight), that collection is cheap.
    gc.collect()
    gc.freeze()
    try:
        yield suite
    finally:
        gc.unfreeze()
    path = suite.write(results_directory(request.config), merge=True)
    print()
    print(suite.table())
    print(f"results: {path}")
