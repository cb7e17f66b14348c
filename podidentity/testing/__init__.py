"""Local emulators of Kubernetes and Azure for testing pod identity code over real HTTP.

Everything here serves on 127.0.0.1 only, so the official clients (``kubernetes``,
``kubernetes.aio``, azure-identity, azure-keyvault-secrets, kubectl) run against it unmodified.
Install with the ``testing`` extra: ``pip install podidentity[testing]``.
"""

from __future__ import annotations

__all__: list[str] = []
