"""RFC 3339 timestamps, parsed the same way on every supported Python.

``datetime.fromisoformat`` only accepts ``Z`` and fractional seconds of other than 3 or 6 digits
from Python 3.11 on; Kubernetes writes both (``2024-05-01T12:00:00Z``, ``...:00.5Z``), so this
normalises the text first.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_rfc3339"]

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
