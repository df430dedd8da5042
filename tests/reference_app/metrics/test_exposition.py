"""The exposition: this process's registry and the database gauges in one text, this process's
slots as of the scrape, and a clear refusal of a multiprocess folder that cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from reference_app.core.clock import utcnow
from reference_app.metrics import Metrics
from reference_app.store import QueueState, TaskStore
from reference_app.tasks.worker import Worker
from tests.reference_app.metrics._scrape import EXPECTED, families_of


class Store:
    async def queue_state(self) -> QueueState:
        counts = {"scheduled": 1, "running": 2, "retrying": 0, "cancelling": 0}
        return QueueState(by_status=counts, oldest_due=None, now=utcnow())


class Slots:
    capacity = 8
    free_slots = 5


async def test_one_scrape_has_every_metric_and_this_processes_slots() -> None:
    metrics = Metrics(webhook_kind="webhook_delivery")
    worker = cast(Worker, Slots())
    hook = metrics.sweeper_hook(worker)
    hook(2, 1)

    text = (await metrics.render(cast(TaskStore, Store()), worker)).decode()

    families = families_of(text)
    assert set(EXPECTED) <= set(families)
    assert families["bgjobs_worker_slots_in_use"].samples[0].value == 3
    assert families["bgjobs_worker_slots_capacity"].samples[0].value == 8
    assert families["bgjobs_sweeper_claims"].samples[0].value == 2
    metrics.close()  # nothing to clean up in one process


def test_a_multiprocess_folder_that_is_missing_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="is not a folder: create it"):
        Metrics(webhook_kind="webhook_delivery", multiprocess_dir=str(tmp_path / "nope"))


def test_a_multiprocess_folder_set_after_prometheus_client_loaded_is_refused(
    tmp_path: Path,
) -> None:
    # This test process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR: its
    # values live in memory, so files in the folder would never see them.
    with pytest.raises(RuntimeError, match="set after prometheus_client was imported"):
        Metrics(webhook_kind="webhook_delivery", multiprocess_dir=str(tmp_path))


def test_the_readme_lists_every_metric_with_its_type_and_labels() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    rows = [
        [cell.strip(" `") for cell in line.strip("|").split("|")]
        for line in readme.splitlines()
        if line.startswith("| `bgjobs_")
    ]
    listed = {
        name.removesuffix("_total"): (kind, {x.strip(" `") for x in labels.split(",") if x})
        for name, kind, labels, _ in rows
    }
    assert listed == EXPECTED
