"""``eventually``: wait for a condition in a test without asserting anything about time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["eventually"]


def eventually(check: Callable[[], Any], within: float = 120.0) -> Any:
    """Poll ``check`` until it returns something truthy, and return that.

    The bound only turns a hang into a failure (nothing is asserted about time): generous,
    since child processes under coverage on a loaded machine start slowly.
    """
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never held: {check.__doc__ or check}")
        time.sleep(0.02)
