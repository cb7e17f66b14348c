"""The Key Vault emulator: vaults' secrets, keys and certificates behind challenge auth."""

from __future__ import annotations

from podidentity.testing.azure._keyvault._service import VAULT_RATE_LIMIT, KeyVaultService

__all__ = ["VAULT_RATE_LIMIT", "KeyVaultService"]
