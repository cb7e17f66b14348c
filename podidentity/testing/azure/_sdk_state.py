"""Process-wide state of the Azure SDKs that would leak from one emulated world to the next.

The Key Vault SDKs cache each vault's authentication challenge (its tenant and resource) in a
module-level dict, keyed by host. A vault of the same name in the next emulated tenant would
then be asked for a token of the previous tenant. The SDKs offer no public way to reset it, so
this reaches into their ``_shared`` modules, tolerating packages that are not installed or that
moved the cache.
"""

from __future__ import annotations

import importlib

__all__ = ["clear_key_vault_challenge_caches"]

_CHALLENGE_CACHES = (
    "azure.keyvault.secrets._shared.http_challenge_cache",
    "azure.keyvault.keys._shared.http_challenge_cache",
    "azure.keyvault.certificates._shared.http_challenge_cache",
    "azure.keyvault.administration._internal.http_challenge_cache",
)


def clear_key_vault_challenge_caches() -> None:
    """Forget every Key Vault SDK's cached challenges (``AzureEmulator`` does it on start/stop)."""
    for name in _CHALLENGE_CACHES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        clear = getattr(module, "clear", None)
        if callable(clear):
            clear()
