"""A producer with ``--refresh-every`` keeps polling: tasks that arrive during the run are published too."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.store import Store
from tests.helpers import make_units
from tests.integration.pipeline_env import pipeline_for, run_in_thread, wait_until

pytestmark = pytest.mark.integration


def test_tasks_imported_during_a_run_are_picked_up_at_the_next_refresh(tmp_path: Path) -> None:
    # Given 4 tasks, a worker, the applier, and a producer that looks again every half second
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    with pipeline_for(store, tmp_path, [f"first-{i}" for i in range(4)]) as pipe:
        pipe.start_worker(concurrency=1)
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        producer = pipe.producer(batch_size=2, max_in_flight=2, refresh_every=0.5)
        producing = run_in_thread(producer.run)
        wait_until(lambda: applier.stats.applied >= 4, 30, f"the first 4 applied; logs:\n{pipe.logs()}")

        # When 3 more data units are imported while it runs
        dataset = store.dataset(pipe.project.id, "items")
        store.add_data_units(pipe.project.id, dataset, make_units([f"later-{i}" for i in range(3)]))

        # Then they are published and applied too, without restarting anything
        wait_until(lambda: applier.stats.applied >= 7, 30, f"the 3 later ones applied; logs:\n{pipe.logs()}")
        wf = store.workflow(pipe.project.id)
        assert {wf.stages[t.stage_uuid].title for t in store.iter_tasks(pipe.project.id)} == {"Complete"}
        assert producer.stats.total_tasks == 7
        # and a stop request ends the producer (what SIGTERM does to 'annoflow produce')
        producer.stop.set()
        producing.join(10)
        assert not producing.is_alive()
        applier.stop.set()
    store.close()
