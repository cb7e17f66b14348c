"""Models: decoding pod identity objects and matching label selectors.

Figures are ratios to a baseline measured in the same process, so they mean something on any
machine; nothing is asserted about time. Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_models.py -s -o python_files='bench_*.py'``.

- ``from_dict`` of 10,000 AzureIdentityBinding dicts, against ``json.loads`` of the same
  objects' JSON (what any client pays just to read them);
- ``LabelSelector.matches`` over 100,000 label sets, against a hand-written dict comparison of
  the same rules (the floor for any selector implementation);
- ``LabelSelector.parse`` of a fresh string, and of a string seen before (cached).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from podidentity.models import AzureIdentityBinding, LabelSelector

BINDINGS = 10_000
LABEL_SETS = 100_000
SELECTOR = "app=web,tier in (api,frontend),!legacy,env notin (dev)"


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _binding(index: int) -> dict[str, object]:
    return {
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {
            "name": f"binding-{index}",
            "namespace": f"team-{index % 40}",
            "resourceVersion": str(1000 + index),
            "uid": f"00000000-0000-0000-0000-{index:012d}",
        },
        "spec": {
            "azureIdentity": f"identity-{index}",
            "selector": f"app-{index}",
            "labelSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["api"]}],
            },
            "serviceAccountNames": ["orders"],
        },
    }


def _report(name: str, ours: float, baseline: float, what: str) -> None:
    print(
        f"\n{name}: {ours * 1000:.1f} ms vs {what} {baseline * 1000:.1f} ms, "
        f"ratio {ours / baseline:.2f}"
    )


def test_decode_10000_bindings() -> None:
    objects = [_binding(i) for i in range(BINDINGS)]
    text = json.dumps(objects)
    parse_only = _best(lambda: json.loads(text))
    decode = _best(lambda: [AzureIdentityBinding.from_dict(o) for o in json.loads(text)])
    round_trip = _best(
        lambda: [AzureIdentityBinding.from_dict(o).to_dict() for o in json.loads(text)]
    )
    _report("json.loads + from_dict, 10,000 bindings", decode, parse_only, "json.loads")
    _report("json.loads + from_dict + to_dict", round_trip, parse_only, "json.loads")


def _hand_written(labels: dict[str, str]) -> bool:
    return (
        labels.get("app") == "web"
        and labels.get("tier") in ("api", "frontend")
        and "legacy" not in labels
        and labels.get("env") != "dev"
    )


def test_match_100000_label_sets() -> None:
    selector = LabelSelector.parse(SELECTOR)
    label_sets = [
        {
            "app": "web" if i % 3 else "db",
            "tier": ("api", "frontend", "batch")[i % 3],
            "env": ("dev", "prod")[i % 2],
            **({"legacy": "1"} if i % 7 == 0 else {}),
        }
        for i in range(LABEL_SETS)
    ]
    assert [selector.matches(s) for s in label_sets] == [_hand_written(s) for s in label_sets]
    floor = _best(lambda: [_hand_written(s) for s in label_sets])
    ours = _best(lambda: [selector.matches(s) for s in label_sets])
    _report("LabelSelector.matches, 100,000 label sets", ours, floor, "hand-written checks")


def test_parse_selectors() -> None:
    fresh = [f"app=web-{i},tier in (a,b),!legacy" for i in range(2_000)]
    started = time.perf_counter()
    for text in fresh:
        LabelSelector.parse(text)
    per_fresh = (time.perf_counter() - started) / len(fresh)
    cached = _best(lambda: [LabelSelector.parse(SELECTOR) for _ in range(10_000)]) / 10_000
    dict_lookup = _best(lambda: [{"a": 1}.get("a") for _ in range(10_000)]) / 10_000
    print(
        f"\nLabelSelector.parse: {per_fresh * 1e6:.1f} us fresh, {cached * 1e6:.2f} us cached "
        f"(a dict lookup here: {dict_lookup * 1e6:.2f} us)"
    )
