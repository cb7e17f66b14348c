"""RFC 3339 timestamps: parsed the same way on every supported Python, written as Kubernetes does.

``datetime.fromisoformat`` only accepts ``Z`` and fractional seconds of other than 3 or 6 digits
from Python 3.11 on; Kubernetes writes both (``2024-05-01T12:00:00Z``, ``...:00.5Z``), so this
normalises the text first. :func:`format_kube_time` is the one writer of Kubernetes timestamps
(``metav1.Time`` and ``metav1.MicroTime``) for the library and the emulator alike.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

__all__ = [
    "GO_RFC3339",
    "GO_RFC3339_MICRO",
    "format_kube_time",
    "parse_kube_time",
    "parse_rfc3339",
]

_FRACTION = re.compile(r"(T\d{2}:\d{2}:\d{2})\.(\d+)", re.IGNORECASE)


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse an RFC 3339 / ISO 8601 date-time; naive when the text has no offset.

    Raises:
        ValueError: the text is not such a date-time.
    """
    normal = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    # Python < 3.11 takes only 3 or 6 fractional digits: pad or cut to microseconds.
    normal = _FRACTION.sub(lambda m: f"{m[1]}.{(m[2] + '000000')[:6]}", normal, count=1)
    if len(normal) > 10 and normal[10] in "tT ":
        normal = normal[:10] + "T" + normal[11:]
    return dt.datetime.fromisoformat(normal)


#: Go layouts of ``metav1.Time`` (RFC 3339) and ``metav1.MicroTime`` (exactly six fractional
#: digits), and the elements they are made of, in order.
GO_RFC3339 = "2006-01-02T15:04:05Z07:00"
GO_RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_GO_ELEMENTS = (
    ("2006", 4),
    ("-", 0),
    ("01", 2),
    ("-", 0),
    ("02", 2),
    ("T", 0),
    ("15", 2),
    (":", 0),
    ("04", 2),
    (":", 0),
    ("05", 2),
)
_RANGES = {"01": ("month", 1, 12), "02": ("day", 1, 31), "15": ("hour", 0, 23)}
_RANGES.update({"04": ("minute", 0, 59), "05": ("second", 0, 59)})
_ZONE = re.compile(r"(?:Z|[+-]\d{2}:\d{2})")


@functools.lru_cache(maxsize=4096)
def parse_kube_time(text: str, *, micro: bool = False) -> dt.datetime:
    """Parse a timestamp the way the Kubernetes API server decodes one; always zone-aware.

    ``metav1.Time`` is Go's ``time.Parse(time.RFC3339, ...)``: a zone (``Z`` or ``±hh:mm``) is
    required and any fractional seconds are accepted. ``metav1.MicroTime`` (``micro=True``:
    Lease ``acquireTime``/``renewTime``, Event ``eventTime``) wants exactly six fractional
    digits. Python's ``isoformat()`` of a naive datetime, or of one with no microseconds, is
    refused by a real server, and so here.

    Raises:
        ValueError: with Go's message (``parsing time "..." as "...": cannot parse ...``).
    """
    layout = GO_RFC3339_MICRO if micro else GO_RFC3339
    prefix = f"parsing time {_go_quote(text)} as {_go_quote(layout)}: "
    rest = text
    values: dict[str, int] = {}
    for element, width in _GO_ELEMENTS:
        if width == 0:
            if not rest.startswith(element):
                raise ValueError(f"{prefix}cannot parse {_go_quote(rest)} as {_go_quote(element)}")
            rest = rest[len(element) :]
            continue
        digits = rest[:width]
        if len(digits) < width or not digits.isdigit() or not digits.isascii():
            raise ValueError(f"{prefix}cannot parse {_go_quote(rest)} as {_go_quote(element)}")
        values[element] = int(digits)
        rest = rest[width:]
    micros = 0
    if micro:
        fraction = rest[1:7]
        if rest[:1] not in (".", ",") or len(fraction) < 6 or not fraction.isdigit():
            raise ValueError(f'{prefix}cannot parse {_go_quote(rest)} as ".000000"')
        micros, rest = int(fraction), rest[7:]
    elif rest[:1] in (".", ",") and rest[1:2].isdigit():
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        micros, rest = int((rest[1:end] + "000000")[:6]), rest[end:]
    zone = _ZONE.match(rest)
    if zone is None:
        raise ValueError(f'{prefix}cannot parse {_go_quote(rest)} as "Z07:00"')
    extra = rest[zone.end() :]
    if extra:
        raise ValueError(f"parsing time {_go_quote(text)}: extra text: {_go_quote(extra)}")
    for element, (name, low, high) in _RANGES.items():
        if not low <= values[element] <= high:
            raise ValueError(f"parsing time {_go_quote(text)}: {name} out of range")
    offset = dt.timezone.utc
    if zone[0] != "Z":
        sign = -1 if zone[0][0] == "-" else 1
        hours, minutes = int(zone[0][1:3]), int(zone[0][4:6])
        offset = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        return dt.datetime(
            values["2006"],
            values["01"],
            values["02"],
            values["15"],
            values["04"],
            values["05"],
            micros,
            tzinfo=offset,
        )
    except ValueError as err:  # 31 February
        raise ValueError(f"parsing time {_go_quote(text)}: day out of range") from err


def format_kube_time(moment: dt.datetime | float, *, micro: bool = False) -> str:
    """A timestamp as the Kubernetes API server writes it, in UTC with a ``Z``.

    :func:`parse_kube_time` reads both kinds back.

    Args:
        moment: a datetime (a naive one is taken as UTC) or seconds since the epoch.
        micro: write a ``metav1.MicroTime``, with exactly six fractional digits
            (``2024-05-01T12:00:00.500000Z``: Lease ``acquireTime``/``renewTime``, Event
            ``eventTime``), instead of a ``metav1.Time`` in whole seconds
            (``2024-05-01T12:00:00Z``, a fraction dropped).
    """
    if isinstance(moment, dt.datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    else:
        moment = dt.datetime.fromtimestamp(moment, dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds" if micro else "seconds") + "Z"


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the printable text timestamps are made of."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
