"""The due backlog admission control sees: admitted, committed, started, counted."""

from __future__ import annotations

import pytest

from reference_app.store.admission import DueBacklog
from reference_app.store.submissions import BacklogFull


def test_admit_counts_until_the_bound_then_refuses() -> None:
    backlog = DueBacklog(bound=2)
    backlog.admit()
    backlog.admit()

    with pytest.raises(BacklogFull) as refused:
        backlog.admit()
    assert (refused.value.due, refused.value.bound) == (2, 2)


def test_without_a_bound_everything_is_admitted() -> None:
    backlog = DueBacklog(bound=None)
    for _ in range(1000):
        backlog.admit()
    assert backlog.due == 1000


def test_a_commit_that_wrote_nothing_gives_its_place_back() -> None:
    backlog = DueBacklog(bound=1)
    backlog.admit()
    backlog.committed(written=False)

    backlog.admit()  # room again
    assert backlog.due == 1


def test_a_count_adds_what_is_still_committing_and_claims_never_go_below_zero() -> None:
    backlog = DueBacklog(bound=10)
    backlog.admit()  # committing: the database cannot count it yet
    backlog.counted(3)
    assert backlog.due == 4

    backlog.committed(written=True)
    backlog.started(9)
    assert backlog.due == 0
