"""The asyncio twin of :mod:`podidentity.keyvault`: the same names, awaitable.

``get_secret``, ``fetch`` and ``Watcher`` here use azure-identity's and the Key Vault SDK's
``aio`` clients; spec, settings, results and sinks are shared with the sync module (sinks are
called in a worker thread, since file and Kubernetes writes block).
"""

from __future__ import annotations

from podidentity.keyvault._core import FetchResult, FetchSettings, ObjectFailure, Output
from podidentity.keyvault._rotation import PollResult
from podidentity.keyvault._spec import VaultObject, load_spec
from podidentity.keyvault.aio._reader import fetch, get_secret, make_credential
from podidentity.keyvault.aio._watch import Watcher

__all__ = [
    "FetchResult",
    "FetchSettings",
    "ObjectFailure",
    "Output",
    "PollResult",
    "VaultObject",
    "Watcher",
    "fetch",
    "get_secret",
    "load_spec",
    "make_credential",
]
