"""The IMDS emulator: one node's metadata endpoint, its token cache and its throttling."""

from __future__ import annotations

from podidentity.testing.azure._imds._cache import TokenCachePolicy
from podidentity.testing.azure._imds._gate import RequestGate
from podidentity.testing.azure._imds._service import (
    DEFAULT_PROPAGATION_DELAY,
    ImdsNode,
    ImdsService,
    imds_error_body,
)
from podidentity.testing.azure._imds._throttle import ImdsLimits

__all__ = [
    "DEFAULT_PROPAGATION_DELAY",
    "ImdsLimits",
    "ImdsNode",
    "ImdsService",
    "RequestGate",
    "TokenCachePolicy",
    "imds_error_body",
]
