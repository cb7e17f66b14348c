"""Kubernetes emulator: what the garbage collector's index and the labels.Parse parser cost.

Figures are ratios to a baseline measured in the same process, interleaved round by round, so
they mean something on any machine; nothing is asserted about time. Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_kube_lifecycle.py -s -o python_files='bench_*.py'``.

- creating ConfigMaps through ``APIServer.create`` (in process, no HTTP) with the garbage
  collector's owner index kept up to date on every commit, against the same writes with the
  index switched off (what every write pays for garbage collection);
- matching 100,000 label sets with a ``labelSelector`` parsed by ``_labels.py``, against the
  models' ``LabelSelector`` (the parser the emulator used before) on the same set-based rules.
"""

from __future__ import annotations

import asyncio
from typing import Any

from podidentity.models import LabelSelector
from podidentity.testing.kube import APIServer
from podidentity.testing.kube._labels import parse_label_selector
from tests.benchmarks.harness import Case, Suite, quick

WRITES = 200 if quick() else 2_000
LABEL_SETS = 10_000 if quick() else 100_000
SELECTOR = "app=web,tier in (api,frontend),!legacy,env notin (dev)"


def _writes(gc_index: bool) -> None:
    async def run() -> None:
        api = APIServer()
        if not gc_index:
            api.gc.committed = lambda *args: None  # type: ignore[method-assign]
        for index in range(WRITES):
            await api.create(
                "configmaps", {"metadata": {"name": f"c{index}", "namespace": "default"}}
            )

    asyncio.run(run())


def test_garbage_collector_index_on_writes(bench: Suite) -> None:
    bench.compare(
        f"create {WRITES:,} ConfigMaps in process",
        Case("with the garbage collector's index", lambda: _writes(True)),
        Case("index switched off", lambda: _writes(False)),
    )


def test_label_selector_matching(bench: Suite) -> None:
    label_sets: list[dict[str, Any]] = [
        {
            "app": "web" if i % 2 else "db",
            "tier": ("api", "frontend", "batch")[i % 3],
            "env": "prod",
        }
        for i in range(LABEL_SETS)
    ]
    ours = parse_label_selector(SELECTOR)
    model = LabelSelector.parse(SELECTOR)

    def with_ours() -> list[bool]:
        return [ours(labels) for labels in label_sets]

    def with_model() -> list[bool]:
        return [model.matches(labels) for labels in label_sets]

    assert with_ours() == with_model()
    bench.compare(
        f"match {LABEL_SETS:,} label sets",
        Case("_labels.parse_label_selector", with_ours),
        Case("models.LabelSelector.matches", with_model),
    )
