"""ARM's long-running identity writes, as the world records them.

A PATCH or PUT of a VM's or scale set's identity block is accepted at once but takes effect
only when its operation completes, some seconds of the world clock later. Until then ARM shows
the requested model with ``provisioningState: Updating``, IMDS still serves the old identities,
and the operation's status URL answers ``InProgress``. An :class:`IdentityOperation` is that
pending change; :class:`~podidentity.testing.azure._world.AzureWorld` settles it (applies it, or
fails it) the first time anyone looks at the world after it is due, so a test moves a
:class:`~podidentity.testing.ManualClock` instead of sleeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from podidentity.testing.azure._world import ManagedIdentity

__all__ = [
    "PREEMPTED",
    "IdentityOperation",
    "OperationInFlight",
    "OperationStatus",
]

OperationStatus = Literal["InProgress", "Succeeded", "Failed", "Canceled"]
#: The error an operation ends with when a newer write on the same machine replaces it.
PREEMPTED = (
    "OperationPreempted",
    "Operation execution has been preempted by a more recent operation.",
)


class OperationInFlight(Exception):
    """Another identity write on the same VM or scale set has not completed yet."""

    def __init__(self, operation: IdentityOperation) -> None:
        super().__init__(f"operation {operation.operation_id} on {operation.resource_id}")
        self.operation = operation


@attrs.define
class IdentityOperation:
    """One accepted identity write and what became of it.

    Attributes:
        operation_id: the ID in the operation's status URL.
        resource_id: the VM or scale set written.
        location: its region (part of the status URL).
        started: when ARM accepted the write (world clock).
        due: when it completes (world clock).
        system_assigned: the requested system-assigned identity state.
        user_assigned: the requested user-assigned identities, by lower-cased resource ID.
        status: ``InProgress``, then ``Succeeded``, ``Failed`` or ``Canceled``.
        ended: when it reached its final status.
        error: ``(code, message)`` of a failed or canceled operation.
        fail_with: ``(code, message)`` it is made to fail with when due (a test control).
    """

    operation_id: str
    resource_id: str
    location: str
    started: float
    due: float
    system_assigned: bool
    user_assigned: dict[str, ManagedIdentity]
    status: OperationStatus = "InProgress"
    ended: float | None = None
    error: tuple[str, str] | None = None
    fail_with: tuple[str, str] | None = None

    @property
    def done(self) -> bool:
        """Whether the operation reached a final status."""
        return self.status != "InProgress"

    def finish(
        self, status: OperationStatus, at: float, error: tuple[str, str] | None = None
    ) -> None:
        """Record the final status."""
        self.status = status
        self.ended = at
        self.error = error

    def snapshot(self) -> IdentityOperation:
        """A copy later settlement does not change."""
        return attrs.evolve(self, user_assigned=dict(self.user_assigned))
