"""``Retry-After``: parsed in both its forms, and honoured by the policy within its bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from reference_app.tasks.retry import RetryPolicy, parse_retry_after

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=5, base_seconds=2.0, cap_seconds=60.0)


def http_date(when: datetime) -> str:
    """The IMF-fixdate form: ``Fri, 14 Mar 2025 12:01:30 GMT``."""
    return format_datetime(when, usegmt=True)


# parse_retry_after ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("86400", 86400.0)],
)
def test_delta_seconds_are_read_as_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_an_http_date_in_the_future_is_the_seconds_until_it() -> None:
    assert parse_retry_after(http_date(NOW + timedelta(seconds=90)), NOW) == 90.0


def test_the_obsolete_rfc850_date_form_is_read_too() -> None:
    assert parse_retry_after("Friday, 14-Mar-25 12:00:45 GMT", NOW) == 45.0


def test_the_asctime_date_form_is_read_as_gmt() -> None:
    # RFC 9110 5.6.7: a recipient MUST accept all three HTTP-date forms; asctime has no
    # zone and is GMT by definition.
    assert parse_retry_after("Fri Mar 14 12:00:30 2025", NOW) == 30.0


def test_an_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after(http_date(NOW - timedelta(hours=1)), NOW) == 0.0


def test_an_http_date_with_another_offset_is_converted() -> None:
    # 13:01 at +01:00 is 12:01 UTC.
    assert parse_retry_after("Fri, 14 Mar 2025 13:01:00 +0100", NOW) == 60.0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "soon",
        "-5",
        "1.5",
        "5 seconds",
        "0x10",
        "Fri, 99 Foo 2025 12:00:00 GMT",
        "Fri, 14 Mar 2025",
    ],
)
def test_garbage_is_ignored(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize("value", ["\u00b2", "\u00b9", "\u2460", "1\u00b2"])
def test_digit_like_characters_are_garbage_not_a_crash(value: str) -> None:
    # str.isdigit() accepts "²" and "①", and float() then raises ValueError. A receiver can
    # send one: httpx decodes a header byte that is not UTF-8 (b"\xb2") as latin-1 ("²").
    assert parse_retry_after(value, NOW) is None


def test_no_header_means_no_hint() -> None:
    assert parse_retry_after(None, NOW) is None


# RetryPolicy.delay ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [(10.0, 10.0), (2.0, 2.0), (60.0, 60.0), (0.0, 2.0), (0.5, 2.0), (3600.0, 60.0)],
)
def test_retry_after_replaces_the_draw_clamped_to_base_and_cap(
    retry_after: float, delay: float
) -> None:
    assert POLICY.delay(1, retry_after, random.Random(1)) == delay
    assert POLICY.delay(4, retry_after, random.Random(2)) == delay


def test_an_http_date_hint_flows_through_to_the_delay() -> None:
    hint = parse_retry_after(http_date(NOW + timedelta(seconds=45)), NOW)

    assert POLICY.delay(1, hint) == 45.0


def test_without_retry_after_the_delay_is_the_full_jitter_backoff() -> None:
    for attempt in (1, 3, 8):
        assert POLICY.delay(attempt, None, random.Random(attempt)) == POLICY.backoff(
            attempt, random.Random(attempt)
        )


def test_without_retry_after_the_delay_spreads_over_zero_to_the_ceiling() -> None:
    rng = random.Random(5)
    delays = [POLICY.delay(3, None, rng) for _ in range(500)]  # ceiling min(60, 2 * 2**2) = 8

    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 0.8
    assert max(delays) > 7.2
    # Below the base: full jitter ignores the floor a Retry-After gets.
    assert any(d < POLICY.base_seconds for d in delays)
