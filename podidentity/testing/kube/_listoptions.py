"""List and watch query options, decoded and validated as the real API server does.

The real server decodes the query into ``ListOptions`` (a value that is not a number is a 400
``BadRequest``), then runs ``ValidateListOptions`` (a forbidden combination of
``resourceVersionMatch``, ``sendInitialEvents``, ``resourceVersion`` and ``continue`` is a 422
``Invalid`` on ``ListOptions.meta.k8s.io``), and serves from its watch cache, which answers a
``resourceVersion`` newer than anything it has seen with a 504 ``Timeout: Too large resource
version``. The texts below are upstream's (``k8s.io/apimachinery/pkg/apis/meta/internalversion/
validation``, ``k8s.io/apiserver/pkg/storage/cacher``). ``WatchList`` is on, as in v1.37.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._errors import APIError, Cause
from ._validation import field_cause

__all__ = ["DEFAULT_WATCH_TIMEOUT", "ListOptions", "too_large_resource_version"]

#: Seconds a watch lasts when the client does not say (or says 0): ``--min-request-timeout``.
DEFAULT_WATCH_TIMEOUT = 1800.0

EXACT = "Exact"
NOT_OLDER_THAN = "NotOlderThan"
_FALSE = ("0", "false")


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 10)
    except ValueError as err:
        # What Go's strconv says; the API server passes it through as a 400.
        raise APIError.bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from err


def _bool(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    return raw.lower() not in _FALSE


def _forbidden(path: str, detail: str) -> Cause:
    return field_cause("FieldValueForbidden", path, f"Forbidden: {detail}")


def _not_supported(path: str, value: str, supported: tuple[str, ...]) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    return field_cause(
        "FieldValueNotSupported", path, f'Unsupported value: "{value}": supported values: {listed}'
    )


def too_large_resource_version(requested: int, current: int) -> APIError:
    """The watch cache's answer to a ``resourceVersion`` it has not reached (504)."""
    return APIError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {requested}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


@attrs.frozen
class ListOptions:
    """The options of one list or watch request.

    Attributes:
        watch: a watch, not a list.
        resource_version: ``resourceVersion`` as given (``""``: none).
        resource_version_match: ``Exact``, ``NotOlderThan`` or ``""``.
        send_initial_events: ``sendInitialEvents`` (``None``: not given).
        allow_bookmarks: ``allowWatchBookmarks``.
        limit: ``limit`` (``0``: all).
        continue_token: ``continue``.
        timeout: seconds a watch lasts (``timeoutSeconds``; 0 or absent: the default).
    """

    watch: bool
    resource_version: str = ""
    resource_version_match: str = ""
    send_initial_events: bool | None = None
    allow_bookmarks: bool = False
    limit: int = 0
    continue_token: str = ""
    timeout: float = DEFAULT_WATCH_TIMEOUT

    @classmethod
    def parse(cls, query: Mapping[str, str], *, watch: bool) -> ListOptions:
        """Decode and validate ``query``.

        Raises:
            APIError: 400 for a value that does not decode, 422 for a forbidden combination.
        """
        limit = _int(query, "limit") or 0
        timeout = _int(query, "timeoutSeconds")
        options = cls(
            watch=watch,
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
            send_initial_events=_bool(query, "sendInitialEvents"),
            allow_bookmarks=bool(_bool(query, "allowWatchBookmarks")),
            limit=max(limit, 0),
            continue_token=query.get("continue", ""),
            timeout=float(timeout) if timeout else DEFAULT_WATCH_TIMEOUT,
        )
        problems = options._watch_problems() if watch else options._list_problems()
        if problems:
            raise APIError.invalid("ListOptions", "meta.k8s.io", "", problems)
        rv = options.resource_version
        if rv:
            try:
                if int(rv) < 0:
                    raise ValueError(rv)
            except ValueError as err:
                raise APIError.bad_request(
                    f'invalid resource version "{rv}": must be a non-negative integer'
                ) from err
        if options.continue_token and rv not in ("", "0") and not watch:
            raise APIError.bad_request(
                "specifying resource version is not allowed when using continue"
            )
        return options

    def _list_problems(self) -> list[Cause]:
        problems: list[Cause] = []
        match = self.resource_version_match
        if match:
            if not self.resource_version:
                problems.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    )
                )
            if self.continue_token:
                problems.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
            if match not in (EXACT, NOT_OLDER_THAN):
                problems.append(
                    _not_supported("resourceVersionMatch", match, (EXACT, NOT_OLDER_THAN, ""))
                )
            if match == EXACT and self.resource_version == "0":
                problems.append(
                    _forbidden(
                        "resourceVersionMatch",
                        'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                    )
                )
        if self.send_initial_events is not None:
            problems.append(
                _forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")
            )
        return problems

    def _watch_problems(self) -> list[Cause]:
        problems: list[Cause] = []
        match = self.resource_version_match
        if self.send_initial_events is not None and match != NOT_OLDER_THAN:
            problems.append(
                _forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            )
        if match:
            if self.send_initial_events is None:
                problems.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents "
                        "is provided",
                    )
                )
            if match != NOT_OLDER_THAN:
                problems.append(_not_supported("resourceVersionMatch", match, (NOT_OLDER_THAN,)))
            if self.continue_token:
                problems.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
        return problems

    @property
    def initial_events(self) -> bool:
        """Whether a watch starts with the current objects as ``ADDED`` events.

        Explicit ``sendInitialEvents`` decides; otherwise the legacy rule: no
        ``resourceVersion`` (or ``0``) means "current state first".
        """
        if self.send_initial_events is not None:
            return self.send_initial_events
        return self.resource_version in ("", "0")
