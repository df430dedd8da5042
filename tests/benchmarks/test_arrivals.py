"""benchmarks._arrivals: the open model's schedule, fixed in advance whatever the server does."""

import itertools
import random

import pytest

from benchmarks._arrivals import arrival_offsets, seeded


def test_uniform_arrivals_are_evenly_spaced_without_drift_and_stop_at_the_window() -> None:
    offsets = list(arrival_offsets(20, window=2.0, poisson=False))
    assert len(offsets) == 40
    assert offsets[0] == 0.0
    assert offsets[-1] == 39 / 20  # n / rate, not a sum of 0.05s
    assert {round(b - a, 9) for a, b in itertools.pairwise(offsets)} == {0.05}


def test_poisson_arrivals_keep_the_rate_on_average_and_sometimes_collide() -> None:
    offsets = list(arrival_offsets(50, window=200.0, rng=random.Random(7)))
    assert 0.95 * 10_000 < len(offsets) < 1.05 * 10_000  # 50/s for 200 s
    assert all(0 < t < 200 for t in offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert min(gaps) >= 0
    # Evenly spaced, no gap would be under 20 ms; independent arrivals often are.
    assert sum(g < 0.005 for g in gaps) > 0.1 * len(gaps)


def test_the_same_seed_gives_the_same_schedule_and_users_get_their_own() -> None:
    def first(rng: random.Random) -> list[float]:
        return list(itertools.islice(arrival_offsets(10, rng=rng), 5))

    assert first(seeded(1, 0, 1)) == first(seeded(1, 0, 1))
    assert first(seeded(1, 0, 1)) != first(seeded(1, 0, 2))  # another user
    assert first(seeded(1, 0, 1)) != first(seeded(1, 1, 1))  # another worker process


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        next(arrival_offsets(0))
