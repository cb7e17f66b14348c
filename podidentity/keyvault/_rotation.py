"""What a watcher remembers between polls, and what each poll changed: pure, no I/O.

Both watchers (sync and aio) keep one :class:`Rotation`. A poll asks it which listings to
run, which objects to fetch given those listings, and hands it the fetch result; it answers
with the merged outputs (the last good value of every object that failed this time) and what
changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from podidentity.keyvault import _core
from podidentity.keyvault._core import (
    FetchResult,
    FetchSettings,
    Listed,
    ListProperties,
    ObjectFailure,
    ObjectState,
    Output,
)
from podidentity.keyvault._spec import VaultObject

__all__ = ["PollResult", "Rotation"]


@attrs.frozen
class PollResult:
    """What one poll did.

    Attributes:
        fetched: the objects fetched (GET) this poll.
        changed: names of outputs added, changed or removed (empty: nothing was written).
        failures: the objects that failed this poll (their last good outputs were kept).
        written: whether the sinks were written.
    """

    fetched: tuple[VaultObject, ...]
    changed: tuple[str, ...]
    failures: tuple[ObjectFailure, ...]
    written: bool = False


class Rotation:
    """The state of one watcher: last delivered outputs and versions per object."""

    def __init__(self, objects: Sequence[VaultObject], settings: FetchSettings) -> None:
        self.objects = _core.prepare(objects, settings)
        self.settings = settings
        self.states: dict[VaultObject, ObjectState] = {}
        self._outputs: dict[VaultObject, dict[str, Output]] = {}

    def listings(self) -> list[ListProperties]:
        """The listings this poll needs (none before the first successful fetch)."""
        return _core.listing_requests(self.objects, self.states, self.settings)

    def to_fetch(
        self, listings: Mapping[ListProperties, Sequence[Listed] | None]
    ) -> list[VaultObject]:
        """The objects this poll must GET."""
        return _core.stale_objects(self.objects, self.states, listings, self.settings)

    def apply(self, result: FetchResult) -> tuple[PollResult, dict[str, Output]]:
        """Merge a fetch into the state; return what changed and the full set to write."""
        before = self.outputs()
        fetched = {o.object for o in result.outputs.values()} | set(result.states)
        for obj in fetched:
            self._outputs[obj] = {n: o for n, o in result.outputs.items() if o.object == obj}
            self.states[obj] = result.states[obj]
        after = self.outputs()
        changed = sorted(
            name
            for name in set(before) | set(after)
            if name not in before or name not in after or before[name].data != after[name].data
        )
        poll = PollResult(
            fetched=tuple(o for o in self.objects if o in fetched),
            changed=tuple(changed),
            failures=result.failures,
        )
        return poll, after

    def outputs(self) -> dict[str, Output]:
        """Every output currently delivered, in the objects' order."""
        merged: dict[str, Output] = {}
        for obj in self.objects:
            merged.update(self._outputs.get(obj, {}))
        return merged


def describe(poll: PollResult) -> dict[str, Any]:
    """A loggable summary of a poll (names only)."""
    return {
        "fetched": [o.label for o in poll.fetched],
        "changed": list(poll.changed),
        "failed": [f.object.label for f in poll.failures],
    }
