"""Access tokens as the token sources return them, and retrying a token call within a deadline.

:class:`AccessToken` is what every source (a node's IMDS, Azure AD for a service principal or a
federated identity) returns; its ``repr`` never shows the token. :func:`retry_within` retries
the transient failures (throttling, 5xx, IMDS not knowing a freshly assigned identity yet) with
exponential backoff and jitter, but never past the caller's deadline: an answer that keeps the
upstream meaning arrives in time instead of a retry the caller has stopped waiting for.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

from podidentity.errors import (
    AzureThrottledError,
    AzureUnavailableError,
    IdentityNotAssignedError,
)

__all__ = [
    "PROPAGATION_POLL_RATE",
    "AccessToken",
    "Backoff",
    "PropagationPacer",
    "retry_within",
    "token_object_id",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@attrs.frozen
class AccessToken:
    """An Azure AD access token and what IMDS says about it.

    Attributes:
        token: the bearer token (never shown by ``repr``).
        expires_on: expiry, epoch seconds.
        resource: the audience it was issued for.
        client_id: the client ID of the identity it belongs to.
        not_before: epoch seconds from which it is valid (``0``: not stated).
        ext_expires_on: extended expiry, epoch seconds (``0``: same as ``expires_on``).
    """

    token: str = attrs.field(repr=lambda _: "****")
    expires_on: int
    resource: str
    client_id: str
    not_before: int = 0
    ext_expires_on: int = 0


def token_object_id(token: AccessToken) -> str:
    """The ``oid`` claim of a token, unverified: it came from our own trusted upstream.

    Used only to match a request's ``object_id`` among identities the caller already may use;
    ``""`` when the token is not a JWT with an ``oid``.
    """
    parts = token.token.split(".")
    if len(parts) != 3:
        return ""
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return ""
    oid = claims.get("oid", "") if isinstance(claims, dict) else ""
    return oid if isinstance(oid, str) else ""


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with full jitter: try ``n`` waits up to ``min(cap, base * 2**n)``.

    Attributes:
        base: the first wait's upper bound, seconds.
        cap: the largest wait, seconds.
        attempts: the most tries in all (the deadline usually ends them first).
    """

    base: float = 0.2
    cap: float = 5.0
    attempts: int = 8

    def wait(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        return float(rng() * min(self.cap, self.base * 2.0**attempt))


_RETRYABLE = (AzureThrottledError, AzureUnavailableError, IdentityNotAssignedError)

PROPAGATION_POLL_RATE = 12.0
"""Asks per second, for all identities of one node together, while IMDS has not caught up
with their assignments: well under IMDS's 20 token requests a second per VM, so the polls
leave room for the node's other callers and are not throttled themselves."""


@attrs.define
class PropagationPacer:
    """Shares one node's IMDS poll budget between the identities waiting for propagation.

    One identity waiting asks every ``1/rate`` to ``1.5/rate`` seconds (jittered): about 80 ms
    at the default rate, which is also how late, at most, its first token comes after IMDS
    starts serving it. Each further identity waiting at the same time stretches every
    waiter's interval, so the node's polls together stay near ``rate`` a second.

    Attributes:
        rate: polls per second for all waiters together.
        waiting: how many calls are polling now.
    """

    rate: float = PROPAGATION_POLL_RATE
    waiting: int = 0

    def interval(self, rng: Callable[[], float] = random.random) -> float:
        """The next wait of one waiter, seconds."""
        return max(1, self.waiting) * (1.0 + rng() / 2) / self.rate

    @property
    def longest(self) -> float:
        """The longest single wait :meth:`interval` gives one waiter alone, seconds."""
        return 1.5 / self.rate


async def retry_within(
    call: Callable[[], Awaitable[_T]],
    *,
    deadline: float,
    backoff: Backoff = Backoff(),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    pacer: PropagationPacer | None = None,
) -> _T:
    """Call ``call`` until it succeeds, retrying transient Azure errors until ``deadline``.

    Retried: :class:`~podidentity.errors.AzureThrottledError` (waiting at least its
    ``retry_after``), :class:`~podidentity.errors.AzureUnavailableError` and
    :class:`~podidentity.errors.IdentityNotAssignedError` (IMDS has not caught up with an
    assignment yet; asked again at the steady, short interval of ``pacer`` until the deadline,
    whatever ``backoff.attempts`` says; pass the node's one :class:`PropagationPacer` so that
    identities waiting together share its budget). Anything else, or a failure whose next try
    could not start before ``deadline`` (a ``clock()`` value), is raised as it is, keeping its
    meaning.
    """
    pacer = pacer if pacer is not None else PropagationPacer()
    attempt = 0
    polling = False
    try:
        while True:
            try:
                return await call()
            except _RETRYABLE as err:
                if isinstance(err, IdentityNotAssignedError):
                    # IMDS learns about an assignment a few seconds after ARM completed it:
                    # poll at a short steady interval until the deadline, rather than backing
                    # off past the moment the identity is there (every waiting pod would
                    # wait that long).
                    if not polling:
                        polling = True
                        pacer.waiting += 1
                    wait = pacer.interval()
                    if clock() + wait >= deadline:
                        raise
                    await sleep(wait)
                    continue
                wait = backoff.wait(attempt)
                if isinstance(err, AzureThrottledError):
                    wait = max(wait, err.retry_after)
                attempt += 1
                if attempt >= backoff.attempts or clock() + wait >= deadline:
                    raise
                logger.debug("retrying in %.2fs after %s", wait, type(err).__name__)
                await sleep(wait)
    finally:
        if polling:
            pacer.waiting -= 1
