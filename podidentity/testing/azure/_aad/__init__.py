"""The Azure AD emulator: token endpoints, client assertions and federated issuers' keys."""

from __future__ import annotations

from podidentity.testing.azure._aad._federation import OidcKeys
from podidentity.testing.azure._aad._service import AadService, aad_error_body

__all__ = ["AadService", "OidcKeys", "aad_error_body"]
