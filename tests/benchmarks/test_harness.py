"""The benchmark harness computes what it says: ratios, medians, GC state, interleaving.

Runs in the normal suite (``test_*.py``); a fake clock makes every figure exact.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from tests.benchmarks.conftest import QUICK_RESULTS, RESULTS, results_directory
from tests.benchmarks.harness import (
    QUICK_ENV,
    Case,
    Suite,
    format_seconds,
    gc_disabled,
    percentile,
)


class FakeClock:
    """A clock that only moves when the work under test says so; counts GC collections."""

    def __init__(self) -> None:
        self.now = 0.0
        self.collections = 0

    def collect(self) -> None:
        self.collections += 1

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def full_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(QUICK_ENV, raising=False)


def test_ratio_is_subject_over_baseline_per_round(clock: FakeClock) -> None:
    suite = Suite("t", clock=clock, collect=clock.collect, min_run=1.0, rounds=5)
    result = suite.compare(
        "scenario",
        Case("ours", lambda: clock.work(3.0)),
        Case("floor", lambda: clock.work(1.0)),
        Case("c baseline", lambda: clock.work(0.5)),
    )
    assert result.ratios["floor"].per_round == (3.0,) * 5
    assert result.ratios["floor"].median == 3.0
    assert result.ratios["c baseline"].median == 6.0
    assert result.subject.runs == (3.0,) * 5
    assert [b.name for b in result.baselines] == ["floor", "c baseline"]
    assert suite.results == [result]


def test_median_min_max_of_runs_and_of_per_round_ratios(clock: FakeClock) -> None:
    subject_times = iter([9.0, 5.0, 1.0, 4.0, 2.0, 3.0])  # the first is the calibration run
    baseline_times = iter([1.0, 1.0, 1.0, 2.0, 1.0, 1.0])
    suite = Suite("t", clock=clock, collect=clock.collect, min_run=0.5, rounds=5)
    result = suite.compare(
        "scenario",
        Case("ours", lambda: clock.work(next(subject_times))),
        Case("base", lambda: clock.work(next(baseline_times))),
    )
    assert result.subject.runs == (5.0, 1.0, 4.0, 2.0, 3.0)
    assert (result.subject.min, result.subject.median, result.subject.max) == (1.0, 3.0, 5.0)
    ratio = result.ratios["base"]
    # Per round: 5/1, 1/1, 4/2, 2/1, 3/1 -> the ratios' median (2.0) differs from the ratio
    # of the medians (3.0 / 1.0): the harness quotes the former.
    assert ratio.per_round == (5.0, 1.0, 2.0, 2.0, 3.0)
    assert (ratio.min, ratio.median, ratio.max) == (1.0, 2.0, 5.0)


def test_cases_are_interleaved_round_by_round_with_rotating_order(clock: FakeClock) -> None:
    calls: list[str] = []

    def case(name: str) -> Case:
        return Case(name, lambda: (calls.append(name), clock.work(1.0)))

    Suite("t", clock=clock, collect=clock.collect, min_run=1.0, rounds=3).compare(
        "s", case("a"), case("b"), case("c")
    )
    calibration, rounds = calls[:3], calls[3:]
    assert calibration == ["a", "b", "c"]
    assert rounds == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert clock.collections == len(calls)  # one collection before every timed run


def test_gc_is_collected_before_and_disabled_during_timing_then_restored(
    clock: FakeClock,
) -> None:
    collected: list[bool] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            collected.append(True)

    seen: list[bool] = []

    def work() -> None:
        seen.append(gc.isenabled())
        # Garbage made before the timed section is gone by the time the section starts.
        assert collected
        clock.work(1.0)

    assert gc.isenabled()
    Cycle()
    # The real gc.collect (the other tests count calls instead); two timed runs keep it fast.
    suite = Suite("t", clock=clock, min_run=1.0, rounds=1)
    suite.measure("gc", work)
    assert seen == [False] * 2
    assert gc.isenabled()


def test_gc_state_is_restored_on_error_and_left_off_if_it_was_off() -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Suite("t", min_run=1.0, rounds=5, collect=lambda: None).measure("x", boom)
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_disabled(collect=lambda: None):
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_short_work_is_looped_to_min_run_and_reported_per_call(clock: FakeClock) -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        clock.work(0.001)

    suite = Suite("t", clock=clock, collect=clock.collect, min_run=0.05, budget=1.0)
    timing = suite.measure("short", work)
    assert timing.number * 0.001 >= 0.05
    assert timing.runs == pytest.approx((0.001,) * len(timing.runs))
    # Short work gets more rounds within the budget: budget / run time, at most 41.
    assert len(timing.runs) == min(41, int(1.0 / (timing.number * 0.001)))


def test_long_work_runs_once_per_round_with_at_least_five_rounds(clock: FakeClock) -> None:
    suite = Suite("t", clock=clock, collect=clock.collect, min_run=0.05, budget=3.0)
    timing = suite.measure("long", lambda: clock.work(2.0))
    assert timing.number == 1
    assert len(timing.runs) == 5


def test_quick_mode_needs_fewer_rounds(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(QUICK_ENV, "1")
    suite = Suite("t", clock=clock, collect=clock.collect)
    assert len(suite.measure("long", lambda: clock.work(2.0)).runs) == 3
    assert suite.to_json()["quick"] is True


def test_setup_runs_outside_the_timed_section(clock: FakeClock) -> None:
    setups: list[int] = []

    def setup() -> None:
        setups.append(1)
        clock.work(100.0)

    suite = Suite("t", clock=clock, collect=clock.collect, min_run=1.0, rounds=5)
    timing = suite.measure("with setup", Case("w", lambda: clock.work(2.0), setup=setup))
    assert timing.runs == (2.0,) * 5
    assert timing.number == 1
    assert len(setups) == 6  # calibration + 5 rounds


def test_compare_rejects_no_baseline_and_duplicate_names(clock: FakeClock) -> None:
    suite = Suite("t", clock=clock, collect=clock.collect, min_run=1.0, rounds=5)
    with pytest.raises(ValueError, match="at least one baseline"):
        suite.compare("s", Case("a", lambda: None))
    with pytest.raises(ValueError, match="must differ"):
        suite.compare("s", Case("a", lambda: None), Case("a", lambda: None))


def test_json_and_table_carry_the_figures(clock: FakeClock, tmp_path: Path) -> None:
    suite = Suite("demo", clock=clock, collect=clock.collect, min_run=0.001, rounds=5)
    suite.compare(
        "decode",
        Case("ours", lambda: clock.work(0.004)),
        Case("json.loads", lambda: clock.work(0.002)),
        note="10 objects",
    )
    suite.measure("parse", lambda: clock.work(2e-6))
    path = suite.write(tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "demo.json"
    assert data["suite"] == "demo"
    assert data["clock"] == "FakeClock"
    comparison, measurement = data["results"]
    assert comparison["ratios"][0]["baseline"] == "json.loads"
    assert comparison["ratios"][0]["median"] == pytest.approx(2.0)
    assert comparison["subject"]["median"] == pytest.approx(0.004)
    assert comparison["note"] == "10 objects"
    assert measurement["timing"]["median"] == pytest.approx(2e-6)
    table = suite.table()
    assert "ratio 2.00 (2.00-2.00)" in table
    assert "median 4.00 ms" in table
    assert "median 2.00 µs" in table


def test_write_merge_replaces_only_what_was_measured(clock: FakeClock, tmp_path: Path) -> None:
    first = Suite("demo", clock=clock, collect=clock.collect, min_run=1.0, rounds=5)
    first.measure("a", lambda: clock.work(1.0))
    first.measure("b", lambda: clock.work(1.0))
    first.write(tmp_path)
    second = Suite("demo", clock=clock, collect=clock.collect, min_run=1.0, rounds=5)
    second.measure("b", lambda: clock.work(2.0))
    second.measure("c", lambda: clock.work(3.0))
    data = json.loads(second.write(tmp_path, merge=True).read_text())
    assert [(r["name"], r["timing"]["median"]) for r in data["results"]] == [
        ("a", 1.0),
        ("b", 2.0),
        ("c", 3.0),
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.5, "2.50 s"), (0.0456, "45.6 ms"), (0.000123, "123 µs"), (5e-8, "50.0 ns")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_percentile_is_the_nearest_rank_in_any_order() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 latencies, unsorted
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile(values, 1.0) == 100.0  # never past the last
    assert percentile([7.0], 0.99) == 7.0


def test_results_go_where_bench_out_says(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Every suite (the module fixture's and the first-token, converge and latency suites) writes
    # through this: a run with --bench-out must never overwrite the documented results.
    monkeypatch.delenv(QUICK_ENV, raising=False)
    monkeypatch.setattr(request.config.option, "bench_out", None)
    assert results_directory(request.config) == RESULTS
    monkeypatch.setattr(request.config.option, "bench_out", str(tmp_path))
    assert results_directory(request.config) == tmp_path
    monkeypatch.setattr(request.config.option, "bench_out", None)
    monkeypatch.setenv(QUICK_ENV, "1")
    assert results_directory(request.config) == QUICK_RESULTS
