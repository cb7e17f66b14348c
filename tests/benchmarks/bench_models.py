"""Models: decoding pod identity objects and matching label selectors.

Every figure goes through :mod:`tests.benchmarks.harness` (GC off while timing, baselines
interleaved in the same process, median of per-round ratios). Run: ``nox -s bench`` or
``pytest tests/benchmarks/bench_models.py -o python_files='bench_*.py' -p no:cacheprovider -s``.

- decoding 500 AzureIdentityBinding objects from JSON (and back to the wire), against
  ``json.loads`` (C), the standard library's pure-Python JSON decoder, and a hand-written
  decode into plain dataclasses without validation (the floor for any typed decode);
- ``LabelSelector.matches`` over 5,000 label sets, against hand-written dict checks of the
  same rules;
- ``LabelSelector.parse`` of 500 strings seen before (cached) against a dict lookup of each,
  and of new strings (absolute).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from podidentity.models import AzureIdentityBinding, LabelSelector
from tests.benchmarks.baselines import py_json_loads
from tests.benchmarks.harness import Case, Suite, quick

BINDINGS = 200 if quick() else 500
LABEL_SETS = 2_000 if quick() else 5_000
SELECTOR = "app=web,tier in (api,frontend),!legacy,env notin (dev)"


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


@dataclass(frozen=True)
class _PlainMeta:
    name: str
    namespace: str
    resource_version: str
    uid: str


@dataclass(frozen=True)
class _PlainBinding:
    meta: _PlainMeta
    identity: str
    selector: str
    match_labels: dict[str, str]
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...]
    service_accounts: tuple[str, ...]


def _plain_decode(obj: dict[str, object]) -> _PlainBinding:
    """The same objects into plain dataclasses: no validation, no unknown-field keeping."""
    meta = obj["metadata"]
    spec = obj["spec"]
    assert isinstance(meta, dict)
    assert isinstance(spec, dict)
    label_selector = spec["labelSelector"]
    return _PlainBinding(
        _PlainMeta(meta["name"], meta["namespace"], meta["resourceVersion"], meta["uid"]),
        spec["azureIdentity"],
        spec["selector"],
        dict(label_selector["matchLabels"]),
        tuple(
            (e["key"], e["operator"], tuple(e["values"]))
            for e in label_selector["matchExpressions"]
        ),
        tuple(spec["serviceAccountNames"]),
    )


def test_decode_bindings(bench: Suite) -> None:
    text = json.dumps([_binding(i) for i in range(BINDINGS)])
    decoded = [AzureIdentityBinding.from_dict(o) for o in json.loads(text)]
    assert [b.to_dict() for b in decoded] == json.loads(text)
    assert py_json_loads(text) == json.loads(text)
    baselines = (
        Case("json.loads (C)", lambda: json.loads(text)),
        Case("pure-Python JSON decoder", lambda: py_json_loads(text)),
        Case(
            "json.loads + hand-written dataclass decode",
            lambda: [_plain_decode(o) for o in json.loads(text)],
        ),
    )
    size = f"{BINDINGS:,} bindings, {len(text) / 1e6:.1f} MB of JSON"
    bench.compare(
        f"decode: json.loads + AzureIdentityBinding.from_dict, {BINDINGS:,} bindings",
        Case(
            "json.loads + from_dict",
            lambda: [AzureIdentityBinding.from_dict(o) for o in json.loads(text)],
        ),
        *baselines,
        note=size,
    )
    bench.compare(
        f"round trip: json.loads + from_dict + to_dict, {BINDINGS:,} bindings",
        Case(
            "json.loads + from_dict + to_dict",
            lambda: [AzureIdentityBinding.from_dict(o).to_dict() for o in json.loads(text)],
        ),
        *baselines,
        note=size,
    )


def _hand_written(labels: dict[str, str]) -> bool:
    return (
        labels.get("app") == "web"
        and labels.get("tier") in ("api", "frontend")
        and "legacy" not in labels
        and labels.get("env") != "dev"
    )


def test_match_label_sets(bench: Suite) -> None:
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
    bench.compare(
        f"LabelSelector.matches (1 label, 3 expressions), {LABEL_SETS:,} label sets",
        Case("LabelSelector.matches", lambda: [selector.matches(s) for s in label_sets]),
        Case("hand-written dict checks", lambda: [_hand_written(s) for s in label_sets]),
    )


def test_parse_selectors(bench: Suite) -> None:
    # 500 different selectors each seen before (the cache holds 1,024), against 500 lookups of
    # the same strings in a dict: one lookup alone is ~30 ns, where the cost of calling the
    # timed function and the CPU's state swung the ratio of single calls by 20% between runs.
    seen = [f"app=web-{i},tier in (api,frontend),!legacy" for i in range(500)]
    table = dict.fromkeys(seen, 1)
    for text in seen:
        LabelSelector.parse(text)
    bench.compare(
        "LabelSelector.parse of 500 strings seen before (cached)",
        Case("LabelSelector.parse, cached", lambda: [LabelSelector.parse(t) for t in seen]),
        Case("a dict lookup of each", lambda: [table.get(t) for t in seen]),
    )
    counter = itertools.count()
    bench.measure(
        "LabelSelector.parse of a new string (3 requirements)",
        lambda: LabelSelector.parse(f"app=web-{next(counter)},tier in (a,b),!legacy"),
    )
