"""The node token proxy (NMI): an IMDS-compatible endpoint that gives each pod its own identity.

On every node, traffic from pods to ``169.254.169.254:80`` is redirected to the proxy, which
finds the calling pod, checks which identities are assigned to it, and answers with a token in
IMDS's shape, from its cache or from the right upstream (the node's IMDS, Azure AD). See
``docs/nmi.md``.

* :class:`TokenProxy`: the ASGI application of one node.
* :class:`TokenProxySettings`: how it treats callers.
* :class:`TokenProxyServer`: serves it (and its probes and metrics) with uvicorn.
"""

from __future__ import annotations

from podidentity.nmi.app import TokenProxy
from podidentity.nmi.server import DEFAULT_PORT, DEFAULT_PROBE_PORT, TokenProxyServer
from podidentity.nmi.settings import DEFAULT_SERVICE_ACCOUNT_AUDIENCE, TokenProxySettings

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_PROBE_PORT",
    "DEFAULT_SERVICE_ACCOUNT_AUDIENCE",
    "TokenProxy",
    "TokenProxyServer",
    "TokenProxySettings",
]
