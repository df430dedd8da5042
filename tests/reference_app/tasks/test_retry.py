"""The retry policy: capped exponential backoff with full jitter."""

from __future__ import annotations

import random

import pytest

from reference_app.tasks.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=10, base_seconds=1.0, cap_seconds=30.0)
SAMPLES = 500


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0), (20, 30.0)],
)
def test_backoff_stays_between_zero_and_the_capped_exponential(
    attempt: int, ceiling: float
) -> None:
    rng = random.Random(attempt)
    delays = [POLICY.backoff(attempt, rng) for _ in range(SAMPLES)]

    assert all(0.0 <= d <= ceiling for d in delays)


@pytest.mark.parametrize("attempt", [1, 3, 6, 20])
def test_backoff_is_full_jitter_spread_over_the_whole_range(attempt: int) -> None:
    ceiling = min(POLICY.cap_seconds, POLICY.base_seconds * 2 ** (attempt - 1))
    rng = random.Random(1234)
    delays = [POLICY.backoff(attempt, rng) for _ in range(SAMPLES)]

    # Full jitter draws from [0, ceiling], not from [ceiling/2, ceiling] ("equal jitter").
    assert min(delays) < ceiling * 0.1
    assert max(delays) > ceiling * 0.9


def test_the_cap_bounds_even_a_huge_attempt_number() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=0.5, cap_seconds=300.0)

    assert policy.backoff(10_000, random.Random(7)) <= 300.0


def test_a_seeded_random_gives_the_same_delays() -> None:
    first_rng, second_rng, other_rng = random.Random(42), random.Random(42), random.Random(43)
    first = [POLICY.backoff(n, first_rng) for n in range(1, 8)]
    second = [POLICY.backoff(n, second_rng) for n in range(1, 8)]
    other = [POLICY.backoff(n, other_rng) for n in range(1, 8)]

    assert first == second
    assert first != other


def test_the_delay_is_one_uniform_draw_from_the_rng() -> None:
    expected = random.Random(99).uniform(0, 4.0)

    assert POLICY.backoff(3, random.Random(99)) == expected


def test_a_zero_base_means_retry_at_once() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=10.0)

    assert policy.backoff(4, random.Random(1)) == 0.0
