"""Wake-ups: new work in an agent stage reaches a producer that looks only every hour; a lost one costs a refresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.store import Store
from common.store.leases import list_failed, release_failed
from common.store.wakeups import NoSignal
from tests.helpers import make_units
from tests.integration.pipeline_env import pipeline_for, run_in_thread, wait_until

pytestmark = pytest.mark.integration

HOUR = 3600.0


def test_an_import_wakes_a_producer_that_looks_every_hour(store: Store, tmp_path: Path) -> None:
    # Given a worker, the applier and a producer whose periodic look is an hour away
    with pipeline_for(store, tmp_path, ["first-0"]) as pipe:
        pipe.start_worker(concurrency=1)
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        producer = pipe.producer(batch_size=2, max_in_flight=2, refresh_every=HOUR)
        run_in_thread(producer.run)
        wait_until(lambda: applier.stats.applied >= 1, 60, f"the first task applied; logs:\n{pipe.logs()}")

        # When 3 data units are imported into the agent stage while everything idles
        dataset = store.dataset(pipe.project.id, "items")
        store.add_data_units(pipe.project.id, dataset, make_units([f"later-{i}" for i in range(3)]))

        # Then the commit woke the producer: they are published and applied within the hour
        wait_until(lambda: applier.stats.applied >= 4, 30, f"the 3 imported ones applied; logs:\n{pipe.logs()}")
        wf = store.workflow(pipe.project.id)
        assert {wf.stages[t.stage_uuid].title for t in store.iter_tasks(pipe.project.id)} == {"Complete"}
        assert producer.stats.total_tasks == 4


def test_a_retry_wakes_a_producer_that_looks_every_hour(store: Store, tmp_path: Path) -> None:
    # Given a task whose handler ran out of time and failed for good, and a producer that looks every hour
    with pipeline_for(store, tmp_path, ["hang-0"]) as pipe:
        pipe.start_worker(concurrency=1)
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        producer = pipe.producer(refresh_every=HOUR)
        run_in_thread(producer.run)
        wait_until(lambda: list_failed(store, pipe.project.id), 60, f"the task failed; logs:\n{pipe.logs()}")

        # When the cause is fixed and a person retries it ('annoflow tasks retry')
        (tmp_path / "fixed").touch()
        assert release_failed(store, pipe.project.id) == 1

        # Then it runs again at once and completes
        wf = store.workflow(pipe.project.id)
        wait_until(
            lambda: {wf.stages[t.stage_uuid].title for t in store.iter_tasks(pipe.project.id)} == {"Complete"},
            30,
            f"the retried task complete; logs:\n{pipe.logs()}",
        )
        assert producer.stats.total_tasks == 2


def test_a_lost_wake_up_costs_one_refresh(store: Store, tmp_path: Path) -> None:
    # Given a producer that hears no wake-up at all (as if every notification were lost)
    with pipeline_for(store, tmp_path, ["first-0"]) as pipe:
        pipe.start_worker(concurrency=1)
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        producer = pipe.producer(refresh_every=1.0, wakeups=NoSignal())
        run_in_thread(producer.run)
        wait_until(lambda: applier.stats.applied >= 1, 60, f"the first task applied; logs:\n{pipe.logs()}")

        # When 2 more data units are imported
        dataset = store.dataset(pipe.project.id, "items")
        store.add_data_units(pipe.project.id, dataset, make_units(["later-0", "later-1"]))

        # Then its periodic look finds them
        wait_until(lambda: applier.stats.applied >= 3, 30, f"the imported ones applied; logs:\n{pipe.logs()}")
        assert producer.stats.total_tasks == 3
