"""IMDS's token cache: one node hands out the same token until it nears expiry.

Azure caches managed-identity tokens on the platform (about 24 h), so repeated requests on one
VM or scale-set instance for the same identity and resource get the *same* access token with a
shrinking ``expires_in`` and an unchanged ``expires_on``, until the token is within
:attr:`TokenCachePolicy.refresh_margin` of expiry, when IMDS issues a new one. A token proxy
that caches on its own must cope with exactly that.

An entry remembers the *grant* under which its identity was on the node (which compute
resource, which assignment); it is served only while the node still holds that very grant, so
a token is never handed out for an identity unassigned, deleted or re-assigned since. The
decisions here are pure: the caller supplies the time and the grants it sees.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping

import attrs

from podidentity.testing.azure._tokens import IMDS_TOKEN_LIFETIME, IssuedToken
from podidentity.testing.azure._world import resource_key

__all__ = ["DEFAULT_REFRESH_MARGIN", "ImdsTokenCache", "TokenCachePolicy"]

#: IMDS replaces a cached token this many seconds before it expires. Azure does not publish
#: the figure; 5 minutes matches the margin azure-identity and MSAL use for their own refresh.
DEFAULT_REFRESH_MARGIN = 300


@attrs.frozen
class TokenCachePolicy:
    """How long IMDS's tokens live, and how early it replaces them.

    Attributes:
        lifetime: seconds from issue to expiry of every IMDS token.
        refresh_margin: a cached token is replaced once it has no more than this many seconds
            left; a margin of at least ``lifetime`` means no token is ever reused.
    """

    lifetime: int = attrs.field(default=IMDS_TOKEN_LIFETIME)
    refresh_margin: int = attrs.field(default=DEFAULT_REFRESH_MARGIN)

    @lifetime.validator
    def _check_lifetime(self, _: attrs.Attribute[int], value: int) -> None:
        if value <= 0:
            raise ValueError("a token lifetime is a positive number of seconds")

    @refresh_margin.validator
    def _check_margin(self, _: attrs.Attribute[int], value: int) -> None:
        if value < 0:
            raise ValueError("a refresh margin cannot be negative")

    def reusable(self, token: IssuedToken, now: float) -> bool:
        """Whether IMDS still hands out ``token`` at ``now`` instead of issuing a new one."""
        # A clock set back before the issue would make expires_in exceed the lifetime.
        return token.issued_at <= now < token.expires_on - self.refresh_margin


@attrs.frozen
class _Entry:
    token: IssuedToken
    grant: Hashable


#: (principal object ID, normalised resource)
_Key = tuple[str, str]


class ImdsTokenCache:
    """One node's cached tokens, by identity and resource; thread-safe.

    A *grant* is any hashable value that changes whenever the identity's presence on the node
    does (for example the assignment time), and ``grants`` maps each identity the node can
    use now (object ID) to its grant.
    """

    def __init__(self) -> None:
        self._entries: dict[_Key, _Entry] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        with self._lock:
            return f"ImdsTokenCache({len(self._entries)} tokens)"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def lookup(
        self,
        object_id: str,
        resource: str,
        *,
        grants: Mapping[str, Hashable],
        policy: TokenCachePolicy,
        now: float,
    ) -> IssuedToken | None:
        """The cached token to serve, or ``None`` when a new one must be issued.

        Every entry whose identity no longer holds its grant is dropped first, so nothing
        outlives an unassignment.
        """
        key = (object_id, resource_key(resource))
        with self._lock:
            self._drop_revoked(grants)
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not policy.reusable(entry.token, now):
                del self._entries[key]
                return None
            return entry.token

    def store(self, token: IssuedToken, resource: str, *, grant: Hashable) -> None:
        """Remember ``token``, issued for ``resource`` under ``grant``."""
        key = (token.principal.object_id, resource_key(resource))
        with self._lock:
            self._entries[key] = _Entry(token, grant)

    def clear(self) -> None:
        """Forget every token (the node went away)."""
        with self._lock:
            self._entries.clear()

    def _drop_revoked(self, grants: Mapping[str, Hashable]) -> None:
        revoked = [key for key, entry in self._entries.items() if grants.get(key[0]) != entry.grant]
        for key in revoked:
            del self._entries[key]
