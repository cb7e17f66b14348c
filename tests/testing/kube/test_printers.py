"""Computed table columns of pods and events, as the real server prints them."""

from __future__ import annotations

from typing import Any

import pytest

from podidentity.testing.kube._printers import EVENTS_V1_PRINTER, POD_PRINTER, human_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (119, "119s"),
        (200, "3m20s"),
        (300, "5m"),
        (3 * 3600 - 1, "179m"),
        (5 * 3600 + 12 * 60, "5h12m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (400 * 86400, "400d"),
        (1061 * 86400, "2y331d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_is_gos(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _pod(*statuses: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "containerStatuses": list(statuses), **status},
    }


def test_pod_status_is_the_waiting_reason_and_restarts_count_up() -> None:
    running = {"ready": True, "restartCount": 1, "state": {"running": {}}}
    crashing = {
        "ready": False,
        "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"finishedAt": "2020-01-01T00:00:00Z"}},
    }
    row = POD_PRINTER.row(_pod(running, crashing))
    assert row[1:3] == ["1/2", "CrashLoopBackOff"]
    assert row[3].startswith("3 (")
    assert row[3].endswith(" ago)")
    assert row[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_being_deleted_is_terminating() -> None:
    pod = _pod()
    pod["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
    assert POD_PRINTER.row(pod)[2] == "Terminating"


def test_events_v1_rows_use_the_series_and_the_reporting_controller() -> None:
    row = EVENTS_V1_PRINTER.row(
        {
            "metadata": {"name": "e"},
            "type": "Warning",
            "reason": "BindingMissing",
            "note": " missing ",
            "regarding": {"kind": "AzureIdentity", "name": "demo"},
            "reportingController": "podidentity.io/mic",
            "reportingInstance": "mic-0",
            "eventTime": "2020-01-01T00:00:00.000000Z",
            "series": {"count": 7, "lastObservedTime": "2020-01-02T00:00:00.000000Z"},
        }
    )
    assert row[1:] == [
        "Warning",
        "BindingMissing",
        "azureidentity/demo",
        "",
        "podidentity.io/mic, mic-0",
        "missing",
        row[7],
        7,
        "e",
    ]
