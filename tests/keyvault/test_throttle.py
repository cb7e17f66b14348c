"""The per-vault throttle gate: after a 429 nobody sends to that vault until Retry-After ends."""

from __future__ import annotations

from typing import Any

import pytest

from podidentity.keyvault import _sync, _throttle
from podidentity.testing.azure import ManualClock


def test_the_gate_holds_until_retry_after_has_passed() -> None:
    clock = ManualClock(1000.0)
    gate = _throttle.ThrottleGate(clock)
    assert gate.delay() == 0.0
    gate.throttled(5)
    assert gate.delay() == 5.0
    clock.advance(2)
    gate.throttled(1)  # a shorter request does not shorten the wait
    assert gate.delay() == 3.0
    clock.advance(3)
    assert gate.delay() == 0.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({}, 1.0),
        ({"Retry-After": "soon"}, 1.0),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float) -> None:
    assert _throttle.retry_after(headers) == seconds


class _Answer:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class _Next:
    def __init__(self, *answers: _Answer) -> None:
        self.answers = list(answers)
        self.sent = 0

    def send(self, request: Any) -> Any:
        self.sent += 1
        return type("Response", (), {"http_response": self.answers.pop(0)})()


def test_the_sync_policy_waits_and_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_sync.time, "sleep", slept.append)
    clock = ManualClock(0.0)
    gate = _throttle.ThrottleGate(clock)
    policy = _sync._GatePolicy(gate)
    policy.next = _Next(_Answer(429, {"Retry-After": "3"}), _Answer(200, {}))  # type: ignore[assignment]
    policy.send(object())  # type: ignore[arg-type]
    assert gate.delay() == 3.0
    assert slept == []
    policy.send(object())  # type: ignore[arg-type]
    assert slept == [3.0]  # the next request waited for the vault
