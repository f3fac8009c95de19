"""A Redis broker that is not there yet, or restarts empty in the middle of a run: nothing stops, nothing is lost.

Each test runs its own ``redis-server`` on a free port, so it can start it late
or kill it without touching the machine's Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from common.store import Store
from tests.integration.pipeline_env import Pipeline, kill_group, pipeline_for, run_in_thread, wait_until
from tests.servers import free_port, require_redis

pytestmark = pytest.mark.integration


@dataclass
class OwnRedis:
    """A redis-server of this test's own, started and killed at will (it keeps nothing on disk)."""

    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([*args, "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        wait_until(self._answers, 10, f"redis-server on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.ConnectionError:
            return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    require_redis()
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH; install Redis to run this test", pytrace=False)
    server = OwnRedis(free_port(), tmp_path)
    yield server
    server.kill()


@contextmanager
def _pipeline(store: Store, tmp: Path, titles: list[str], url: str) -> Iterator[Pipeline]:
    with pipeline_for(store, tmp, titles) as pipe:
        pipe.redis_url = url  # this test's own server instead of a database of the machine's Redis
        yield pipe


def _where(store: Store, pipe: Pipeline) -> list[str]:
    wf = store.workflow(pipe.project.id)
    return sorted(wf.stages[t.stage_uuid].title for t in store.iter_tasks(pipe.project.id))


def test_producer_applier_and_worker_wait_for_a_broker_that_comes_up_late(own_redis: OwnRedis, tmp_path: Path) -> None:
    # Given a producer, an applier and a worker started while their Redis is not running
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    with _pipeline(store, tmp_path, [f"item-{i}" for i in range(12)], own_redis.url) as pipe:
        pipe.start_worker(concurrency=1)
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        producer = pipe.producer(batch_size=4, max_in_flight=2, refresh_every=0.5)
        run_in_thread(producer.run)
        time.sleep(2)
        assert applier.stats.applied == 0

        # When Redis comes up
        own_redis.start()

        # Then every task goes through, once
        wait_until(lambda: applier.stats.applied >= 12, 60, f"12 applied; logs:\n{pipe.logs()}")
        assert _where(store, pipe) == ["Complete"] * 12
        assert applier.stats.stale == 0
        producer.stop.set()
        applier.stop.set()
    store.close()


def test_a_broker_that_restarts_empty_mid_run_loses_no_task(own_redis: OwnRedis, tmp_path: Path) -> None:
    # Given a run of 30 slow tasks with short leases, under way
    own_redis.start()
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    with _pipeline(store, tmp_path, [f"slow-{i}" for i in range(30)], own_redis.url) as pipe:
        worker = pipe.start_worker(concurrency=2)
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        # Six batches in flight: while two run, others wait in the queue and are lost with it.
        producer = pipe.producer(batch_size=3, max_in_flight=6, refresh_every=0.5, lease_seconds=4)
        run_in_thread(producer.run)
        wait_until(lambda: applier.stats.applied >= 6, 60, f"6 applied; logs:\n{pipe.logs()}")

        # When Redis is killed and comes back empty: queued batches, the in-flight ledger, all gone
        own_redis.kill()
        time.sleep(2)
        own_redis.start()

        # Then the producer and the applier carry on, the lost batches are claimed again once
        # their leases expire, and every task reaches Complete exactly once
        wait_until(lambda: _where(store, pipe) == ["Complete"] * 30, 90, f"all 30 complete; logs:\n{pipe.logs()}")
        moves = [e for e in store.events(pipe.project.id) if e.from_stage != e.to_stage]
        assert sorted(e.task_uuid for e in moves) == sorted(t.uuid for t in store.iter_tasks(pipe.project.id))
        # and the lost batches were indeed published again
        assert producer.stats.total_tasks > 30
        producer.stop.set()
        applier.stop.set()
        kill_group(worker)
    store.close()
