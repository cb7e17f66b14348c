"""The one benchmark harness: every ``tests/benchmarks/bench_*.py`` measures through it.

Figures must reproduce on a shared, noisy machine, so each timed section is taken the same way:

- **Clock**: CPU time of the whole process (``time.process_time``: every thread, user and
  system), not wall time, by default. The machine is shared: with wall time, other processes'
  load enters every figure; CPU time counts only the work done here (the emulators' server
  threads included, since they run in this process). Pass ``clock=time.perf_counter`` to a
  :class:`Suite` for work that waits (sleeps, other processes); the JSON names the clock.
- **Warm-up**: each case runs untimed first (the calibration runs below), so caches, imports
  and lazily built tables are in place before anything is recorded.
- **GC**: ``gc.collect()`` right before, and the collector disabled during, every timed section
  (restored afterwards, whatever happens); a collection landing in one run and not another was
  the main source of irreproducible ratios.
- **Calibrated inner loops**: work shorter than ``min_run`` (20 ms) is repeated ``number``
  times inside one timed section (found as ``timeit`` does), and figures are per call.
- **Repeats**: at least 5 runs (3 in quick mode), more for short work (up to 41 within a
  ``budget`` of seconds per scenario, 5 s unless the suite says otherwise); each result keeps
  every run and its min / median / max. Short rounds interleave subject and baseline closely,
  so both see the same machine load.
- **Interleaved baselines**: :meth:`Suite.compare` runs the subject and its named baselines in
  turn, round after round (the order rotating every round), in the same process. A ratio is the
  median over rounds of ``subject_run / baseline_run`` of the *same round*, so drift of the
  machine's load between rounds cancels out. The min and max of the per-round ratios are kept.
- **Output**: a human table (printed by the pytest fixture) and JSON (``Suite.to_json``), which
  ``tests/benchmarks/render.py`` turns into the tables of ``docs/benchmarks.md``.
- **Quick mode** (``nox -s bench -- --quick`` or ``BENCH_QUICK=1``): fewer rounds and shorter
  runs, for smoke runs; benchmarks may also shrink their data with :func:`quick`. Quick
  results are written to ``.bench/`` only, never to the documented results.

Usage in a benchmark module (the ``bench`` fixture of ``tests/benchmarks/conftest.py`` gives a
:class:`Suite` per module, prints its table and writes ``tests/benchmarks/results/<module>.json``
when the module ends)::

    from tests.benchmarks.harness import Case, Suite

    def test_decode(bench: Suite) -> None:
        text = json.dumps(objects)
        bench.compare(
            "decode 10,000 bindings",
            Case("json.loads + from_dict", lambda: [from_dict(o) for o in json.loads(text)]),
            Case("json.loads (C)", lambda: json.loads(text)),
            Case("json decoder (pure Python)", lambda: py_decoder.decode(text)),
        )
        bench.measure("LabelSelector.parse, cached", lambda: parse(SELECTOR))

``compare(name, subject, *baselines)`` returns a :class:`Comparison` (``.ratios[baseline_name]``
is a :class:`Ratio` with ``median``, ``min``, ``max``); ``measure`` returns a :class:`Timing`
(``median``, ``min``, ``max``, seconds per call). A :class:`Case` may have a ``setup``
callable, run before each timed run outside the timed section (then ``number`` is 1); use it for
work that must start fresh every run. ``note=`` on both attaches free-form figures (sizes,
counts) that the table and the JSON carry along.

Without pytest: ``Suite("name").compare(...)``, then ``print(suite.table())`` and
``suite.write(directory)``.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "Comparison",
    "Measurement",
    "Ratio",
    "Suite",
    "Timing",
    "format_seconds",
    "gc_disabled",
    "percentile",
    "quick",
]

Clock = Callable[[], float]

QUICK_ENV = "BENCH_QUICK"
MIN_ROUNDS = 5
QUICK_ROUNDS = 3
MAX_ROUNDS = 41
MAX_NUMBER = 1_000_000


def quick() -> bool:
    """True in quick (smoke) mode: ``--quick`` on the pytest command line or ``BENCH_QUICK=1``."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank; 0.5 is p50)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextmanager
def gc_disabled(collect: Callable[[], object] = gc.collect) -> Iterator[None]:
    """Collect garbage, then keep the collector off for the block; restore its state after."""
    was_enabled = gc.isenabled()
    collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Case:
    """One named piece of work: the subject of a benchmark or one of its baselines.

    Attributes:
        name: What it is, as the table and the JSON show it (say what the baseline measures,
            e.g. ``"json.loads (C)"``).
        fn: The work; called with no arguments, its result is discarded.
        setup: Run before every timed run, outside the timed section; forces one call a run.
    """

    name: str
    fn: Callable[[], object]
    setup: Callable[[], object] | None = None


@dataclass(frozen=True)
class Timing:
    """The runs of one case, in seconds per call."""

    name: str
    number: int
    runs: tuple[float, ...]

    @property
    def min(self) -> float:
        """The fastest run."""
        return min(self.runs)

    @property
    def median(self) -> float:
        """The median run."""
        return statistics.median(self.runs)

    @property
    def max(self) -> float:
        """The slowest run."""
        return max(self.runs)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON output."""
        return {
            "name": self.name,
            "number": self.number,
            "runs": list(self.runs),
            "min": self.min,
            "median": self.median,
            "max": self.max,
        }


@dataclass(frozen=True)
class Ratio:
    """Subject over one baseline, from runs of the same rounds."""

    baseline: str
    per_round: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median of the per-round ratios: the figure to quote."""
        return statistics.median(self.per_round)

    @property
    def min(self) -> float:
        """The smallest per-round ratio."""
        return min(self.per_round)

    @property
    def max(self) -> float:
        """The largest per-round ratio."""
        return max(self.per_round)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON output."""
        return {
            "baseline": self.baseline,
            "per_round": list(self.per_round),
            "median": self.median,
            "min": self.min,
            "max": self.max,
        }


@dataclass(frozen=True)
class Comparison:
    """A subject measured interleaved with its baselines."""

    name: str
    subject: Timing
    baselines: tuple[Timing, ...]
    ratios: dict[str, Ratio]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON output."""
        return {
            "kind": "comparison",
            "name": self.name,
            "subject": self.subject.to_json(),
            "baselines": [b.to_json() for b in self.baselines],
            "ratios": [r.to_json() for r in self.ratios.values()],
            "note": self.note,
        }


@dataclass(frozen=True)
class Measurement:
    """A case measured alone (no baseline): an absolute figure for this machine."""

    name: str
    timing: Timing
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data for the JSON output."""
        return {
            "kind": "measurement",
            "name": self.name,
            "timing": self.timing.to_json(),
            "note": self.note,
        }


Result = Comparison | Measurement


@dataclass
class Suite:
    """Benchmarks of one module: measures, keeps the results, renders them.

    Attributes:
        name: The suite's name (the JSON file is ``<name>.json``).
        clock: Seconds as a float: CPU time of the process by default (see the module doc);
            injectable so the harness itself can be tested.
        min_run: A timed run lasts at least this long (short work loops ``number`` times).
        budget: Seconds a scenario may take; more rounds for short work, within it.
        rounds: Fixed number of rounds, overriding the automatic choice.
        collect: Run before every timed section (``gc.collect``; injectable for tests).
    """

    name: str
    clock: Clock = time.process_time
    min_run: float | None = None
    budget: float | None = None
    rounds: int | None = None
    collect: Callable[[], object] = gc.collect
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.min_run is None:
            self.min_run = 0.005 if quick() else 0.02
        if self.budget is None:
            self.budget = 0.5 if quick() else 5.0

    # -- measuring -------------------------------------------------------------------------

    def _run(self, case: Case, number: int) -> float:
        if case.setup is not None:
            case.setup()
        fn = case.fn
        clock = self.clock
        with gc_disabled(self.collect):
            started = clock()
            for _ in range(number):
                fn()
            return clock() - started

    def _calibrate(self, case: Case) -> tuple[int, float]:
        """Loop count for a run of at least ``min_run``; these runs are the warm-up."""
        assert self.min_run is not None
        number = 1
        while True:
            elapsed = self._run(case, number)
            if case.setup is not None or elapsed >= self.min_run or number >= MAX_NUMBER:
                return number, elapsed / number
            if elapsed <= 0:
                number *= 10
            else:
                wanted = math.ceil(number * self.min_run * 1.2 / elapsed)
                number = max(number * 2, min(wanted, number * 10))
            number = min(number, MAX_NUMBER)

    def _rounds(self, run_seconds: float) -> int:
        if self.rounds is not None:
            return self.rounds
        assert self.budget is not None
        floor = QUICK_ROUNDS if quick() else MIN_ROUNDS
        if run_seconds <= 0:
            return MAX_ROUNDS
        return max(floor, min(MAX_ROUNDS, int(self.budget / run_seconds)))

    def _interleave(self, cases: Sequence[Case]) -> list[Timing]:
        calibrated = [self._calibrate(case) for case in cases]
        numbers = [number for number, _ in calibrated]
        round_seconds = sum(number * per_call for number, per_call in calibrated)
        rounds = self._rounds(round_seconds)
        runs: list[list[float]] = [[] for _ in cases]
        for index in range(rounds):
            # Rotate who goes first so no case always follows the same one.
            shift = index % len(cases)
            for position in [*range(shift, len(cases)), *range(shift)]:
                number = numbers[position]
                runs[position].append(self._run(cases[position], number) / number)
        return [
            Timing(case.name, number, tuple(case_runs))
            for case, number, case_runs in zip(cases, numbers, runs, strict=True)
        ]

    def compare(self, name: str, subject: Case, *baselines: Case, note: str = "") -> Comparison:
        """Measure ``subject`` interleaved with each baseline; ratios are subject / baseline.

        Args:
            name: The scenario, as the table shows it.
            subject: The work being judged.
            *baselines: One or more named baselines doing the same kind of work.
            note: Free-form figures to carry along (sizes, counts).

        Returns:
            The comparison, also kept in :attr:`results`.

        Raises:
            ValueError: No baseline, or two cases with the same name.
        """
        if not baselines:
            raise ValueError(f"benchmark {name!r}: compare needs at least one baseline")
        names = [subject.name, *(b.name for b in baselines)]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark {name!r}: case names must differ, got {names}")
        timings = self._interleave([subject, *baselines])
        ours, others = timings[0], timings[1:]
        ratios = {
            other.name: Ratio(
                other.name,
                tuple(s / b for s, b in zip(ours.runs, other.runs, strict=True)),
            )
            for other in others
        }
        result = Comparison(name, ours, tuple(others), ratios, note)
        self._keep(result)
        return result

    def measure(self, name: str, fn: Callable[[], object] | Case, *, note: str = "") -> Timing:
        """Measure one piece of work alone (an absolute figure, no ratio)."""
        case = fn if isinstance(fn, Case) else Case(name, fn)
        (timing,) = self._interleave([case])
        self._keep(Measurement(name, timing, note))
        return timing

    def _keep(self, result: Result) -> None:
        self.results = [r for r in self.results if r.name != result.name]
        self.results.append(result)

    # -- output ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The suite's results and where they were measured, as plain data."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "suite": self.name,
            "quick": quick(),
            "measured": now,
            "clock": getattr(self.clock, "__name__", type(self.clock).__name__),
            "machine": {
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "system": platform.system(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            "results": [{**r.to_json(), "measured": now} for r in self.results],
        }

    def write(self, directory: Path, *, merge: bool = False) -> Path:
        """Write ``<directory>/<name>.json``; return its path.

        With ``merge``, results already in the file whose names this suite did not measure
        are kept (in place), so a partial run replaces only what it measured.
        """
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        data = self.to_json()
        if merge and path.exists():
            fresh = {r["name"]: r for r in data["results"]}
            old = json.loads(path.read_text(encoding="utf-8")).get("results", [])
            merged = [fresh.pop(r["name"], r) for r in old]
            data["results"] = merged + list(fresh.values())
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        return path

    def table(self) -> str:
        """A plain-text table of every result (what ``pytest -s`` prints)."""
        lines = [f"== {self.name} ({'quick' if quick() else 'full'} mode) =="]
        for result in self.results:
            if isinstance(result, Measurement):
                lines.append(f"{result.name}: {_timing_text(result.timing)}")
            else:
                lines.append(f"{result.name}")
                lines.append(f"  {result.subject.name:<44} {_timing_text(result.subject)}")
                for baseline in result.baselines:
                    ratio = result.ratios[baseline.name]
                    lines.append(
                        f"  {baseline.name:<44} {_timing_text(baseline)}"
                        f"  ratio {ratio.median:.2f} ({ratio.min:.2f}-{ratio.max:.2f})"
                    )
            if result.note:
                lines.append(f"  note: {result.note}")
        return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """Seconds with a unit that keeps three significant digits (``1.23 s``, ``45.6 ms``)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{_three(seconds / scale)} {unit}"
    return f"{_three(seconds / 1e-9)} ns"


def _three(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _timing_text(timing: Timing) -> str:
    return (
        f"median {format_seconds(timing.median)} "
        f"(min {format_seconds(timing.min)}, max {format_seconds(timing.max)}; "
        f"{len(timing.runs)} runs x {timing.number})"
    )
