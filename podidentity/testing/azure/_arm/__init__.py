"""The ARM emulator: Compute's identity blocks on VMs and scale sets, roles and throttling."""

from __future__ import annotations

from podidentity.testing.azure._arm._service import (
    DEFAULT_OPERATION_DURATION,
    ArmService,
    arm_error_body,
    arm_error_json,
    arm_resource_id,
    with_arm_headers,
)
from podidentity.testing.azure._arm._throttle import ArmLimits

__all__ = [
    "DEFAULT_OPERATION_DURATION",
    "ArmLimits",
    "ArmService",
    "arm_error_body",
    "arm_error_json",
    "arm_resource_id",
    "with_arm_headers",
]
