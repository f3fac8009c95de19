"""Reliability of the queue pipeline: killed workers, a restarted applier, hanging handlers, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.batches import INLINE_SPECS_BYTES
from common.store import Store
from common.store.leases import FAILED, list_failed
from tests.conftest import _postgres_store
from tests.integration.pipeline_env import (
    ROOT,
    a_task_just_started,
    kill_group,
    pipeline_for,
    run_in_thread,
    schema_of,
    wait_until,
)
from tests.servers import POSTGRES_URL, require_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_store() -> Iterator[Store]:
    require_redis()
    yield from _postgres_store()


def _one_event_per_task(store: Store, project_id: str) -> None:
    events = Counter(e.task_uuid for e in store.events(project_id))
    assert events == Counter({t.uuid: 1 for t in store.iter_tasks(project_id)})


def _all_complete(store: Store, project_id: str, n: int) -> bool:
    complete = store.workflow(project_id).stage("Complete").uuid
    return store.counts(project_id).get(complete, {}).get("COMPLETED", 0) == n


@pytest.mark.parametrize("inline_bytes", [INLINE_SPECS_BYTES, 0], ids=["specs-in-message", "specs-by-reference"])
def test_kill_9_worker_mid_batch_loses_nothing(pg_store: Store, tmp_path: Path, inline_bytes: int) -> None:
    # Given slow tasks (0.2 s each), batches of 4 and a 3-second lease
    titles = [f"slow-{i}" for i in range(16)]
    with pipeline_for(pg_store, tmp_path, titles) as pipe:
        first = pipe.start_worker()
        producer = pipe.producer(batch_size=4, max_in_flight=2, lease_seconds=3, inline_bytes=inline_bytes)
        applier = pipe.applier()
        run_in_thread(applier.run)
        producing = run_in_thread(producer.run)
        wait_until(lambda: applier.stats.applied >= 4, 30, f"a first batch; logs:\n{pipe.logs()}")
        wait_until(lambda: a_task_just_started(pipe), 30, f"a batch mid-run; logs:\n{pipe.logs()}")

        # When the whole worker (parent and pool) is killed with SIGKILL mid-batch, and a new one starts
        kill_group(first, signal.SIGKILL)
        pipe.start_worker()
        producing.join(60)
        wait_until(lambda: _all_complete(pg_store, pipe.project.id, 16), 30, f"all 16 complete:\n{pipe.logs()}")
        applier.stop.set()

        # Then every task reached Complete, with exactly one transition each (re-sent after its lease expired)
        _one_event_per_task(pg_store, pipe.project.id)
        assert producer.stats.total_tasks > 16  # the lost batch was published again


def test_restart_applier_mid_run_applies_each_result_once(pg_store: Store, tmp_path: Path) -> None:
    # Given a worker, a producer, and the applier running as its own process against PostgreSQL
    titles = [f"slow-{i}" for i in range(16)]
    with pipeline_for(pg_store, tmp_path, titles) as pipe:
        # The applier process reaches the test's schema through libpq's PGOPTIONS.
        env = pipe.env(ANNOFLOW_STORE_URL=POSTGRES_URL, PGOPTIONS=f"-csearch_path={schema_of(pg_store)}")
        pipe.start_worker()
        first = pipe.start("apply", "--num-retries", "1", env=env, log="applier")
        producer = pipe.producer(batch_size=2, max_in_flight=2, lease_seconds=3)
        producing = run_in_thread(producer.run)
        complete = pg_store.workflow(pipe.project.id).stage("Complete").uuid
        wait_until(
            lambda: pg_store.counts(pipe.project.id).get(complete, {}).get("COMPLETED", 0) >= 4,
            30,
            f"some applied results; logs:\n{pipe.logs()}",
        )

        # When the applier is killed with SIGKILL and started again
        kill_group(first, signal.SIGKILL)
        pipe.start("apply", "--num-retries", "1", env=env, log="applier")
        producing.join(60)
        wait_until(lambda: _all_complete(pg_store, pipe.project.id, 16), 30, f"all 16 complete:\n{pipe.logs()}")

        # Then nothing was lost and nothing applied twice
        _one_event_per_task(pg_store, pipe.project.id)


def test_hanging_handler_fails_retries_then_tasks_retry_sends_it_again(pg_store: Store, tmp_path: Path) -> None:
    # Given a handler that hangs past the 1 s soft time limit, and one retry allowed
    with pipeline_for(pg_store, tmp_path, ["hang-0", "item-1"]) as pipe:
        pipe.start_worker()
        applier = pipe.applier(num_retries=1, backoff_s=0.1)
        run_in_thread(applier.run)

        # When the producer drains the stage
        pipe.producer(batch_size=1, max_in_flight=2, lease_seconds=20).run()

        # Then the hanging task failed twice (first try and one retry) and is listed as failed
        failed = list_failed(pg_store, pipe.project.id)
        assert [t.data_title for t in failed] == ["hang-0"]
        assert failed[0].lease_token == FAILED and "SoftTimeLimitExceeded" in (failed[0].last_error or "")
        assert applier.stats.retried == 1 and applier.stats.failed == 1
        env = pipe.env(ANNOFLOW_STORE_URL=POSTGRES_URL, PGOPTIONS=f"-csearch_path={schema_of(pg_store)}")
        listed = subprocess.run(
            [sys.executable, "-m", "cli", "tasks", "failed", "--project", "pipe"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0 and "hang-0" in listed.stdout and "SoftTimeLimit" in listed.stdout

        # When the handler is fixed and 'annoflow tasks retry' sends it again
        (tmp_path / "fixed").touch()
        retried = subprocess.run(
            [sys.executable, "-m", "cli", "tasks", "retry", "--project", "pipe"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert retried.returncode == 0, retried.stdout + retried.stderr
        pipe.producer(batch_size=1, max_in_flight=2, lease_seconds=20).run()
        wait_until(lambda: _all_complete(pg_store, pipe.project.id, 2), 20, "both tasks complete")
        applier.stop.set()

        # Then it reached Complete and nothing is failed any more
        assert list_failed(pg_store, pipe.project.id) == []
        assert os.path.exists(tmp_path / "fixed")
