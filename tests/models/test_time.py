from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podidentity.models._time import format_kube_time, parse_kube_time, parse_rfc3339

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", dt.datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("1970-01-01T00:01:00.5Z", dt.datetime(1970, 1, 1, 0, 1, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        (
            "2024-05-01T14:00:00+02:00",
            dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ),
        ("2024-05-01T12:00:00", dt.datetime(2024, 5, 1, 12)),
    ],
)
def test_kubernetes_timestamps_parse_on_every_python(text: str, expected: dt.datetime) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-05-01T25:00:00Z"])
def test_garbage_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError; the caller words the message
        parse_rfc3339(text)


# strftime does not zero-pad years before 1000 on Linux; RFC 3339 years have four digits.
@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), timezones=st.just(UTC)))
def test_round_trips_what_kubernetes_writes(value: dt.datetime) -> None:
    text = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_rfc3339(text) == value


@pytest.mark.parametrize(
    ("moment", "micro", "expected"),
    [
        (dt.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC), False, "2024-05-01T12:00:00Z"),
        (
            dt.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
            True,
            "2024-05-01T12:00:00.500000Z",
        ),
        (dt.datetime(2024, 5, 1, 12, tzinfo=UTC), True, "2024-05-01T12:00:00.000000Z"),
        (
            dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            False,
            "2024-05-01T12:00:00Z",
        ),
        (dt.datetime(2024, 5, 1, 12), False, "2024-05-01T12:00:00Z"),  # naive: taken as UTC
        (60.75, False, "1970-01-01T00:01:00Z"),
        (60.75, True, "1970-01-01T00:01:00.750000Z"),
        (dt.datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), False, "0999-01-02T03:04:05Z"),
    ],
)
def test_kubernetes_timestamps_are_written_as_the_api_server_writes_them(
    moment: dt.datetime | float, micro: bool, expected: str
) -> None:
    assert format_kube_time(moment, micro=micro) == expected


@given(st.datetimes(timezones=st.just(UTC)), st.booleans())
def test_what_is_written_is_read_back_by_the_api_servers_rules(
    moment: dt.datetime, micro: bool
) -> None:
    written = format_kube_time(moment, micro=micro)
    expected = moment if micro else moment.replace(microsecond=0)
    assert parse_kube_time(written, micro=micro) == expected
