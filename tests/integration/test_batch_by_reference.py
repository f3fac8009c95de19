"""Stage batches on Redis: large ones wait under a key of their own; specs a worker cannot read are answered."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from common.batches import SPECS_KEY_PREFIX, specs_key
from common.celery_app import RESULTS_QUEUE, make_celery_app
from common.redis_transport import message_body, push_many, task_envelope
from common.store import Store
from common.store.leases import FAILED, list_failed
from tests.conftest import _postgres_store
from tests.integration.pipeline_env import AGENTS, pipeline_for, run_in_thread, wait_until
from tests.servers import require_redis
from workers.tasks import _run_batch

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_store() -> Iterator[Store]:
    require_redis()
    yield from _postgres_store()


def _queued_args(client: redis.Redis, queue: str) -> list[list[Any]]:
    """The task arguments of every message waiting on a stage queue (Celery's protocol 2 body)."""
    return [json.loads(message_body(raw))[0] for raw in client.lrange(queue, 0, -1)]


def test_a_large_batch_travels_by_reference_and_its_specs_go_once_applied(pg_store: Store, tmp_path: Path) -> None:
    # Given 9 tasks, batches of 3, and a producer that sends every batch by reference
    titles = [f"item-{i}" for i in range(9)]
    with pipeline_for(pg_store, tmp_path, titles) as pipe:
        client = redis.Redis.from_url(pipe.redis_url)
        producer = pipe.producer(batch_size=3, max_in_flight=3, inline_bytes=0, lease_seconds=120)
        producing = run_in_thread(producer.run)
        queue = producer.plans[0].queue
        wait_until(lambda: client.llen(queue) == 3, 20, "three batches on the stage queue")

        # Then each message carries its header and no specs; the specs wait under the key it names
        queued = _queued_args(client, queue)
        assert [specs for _, specs in queued] == [None, None, None]
        uuids = []
        for header, _ in queued:
            assert header["specs_key"] == specs_key(header["batch_id"])
            stored = json.loads(client.get(header["specs_key"]) or b"null")
            assert len(stored) == 3 and {s["stage_uuid"] for s in stored} == {header["stage_uuid"]}
            # kept until a minute past the lease deadline at the most
            assert 60 < client.ttl(header["specs_key"]) <= 120 + 60
            uuids += [s["uuid"] for s in stored]
        assert sorted(uuids) == sorted(t.uuid for t in pg_store.iter_tasks(pipe.project.id))

        # When a worker and the applier run
        pipe.start_worker()
        applier = pipe.applier()
        run_in_thread(applier.run)
        producing.join(60)
        wait_until(lambda: applier.stats.applied >= 9, 30, f"9 applied results; logs:\n{pipe.logs()}")
        applier.stop.set()

        # Then every task moved once, and no specs are left behind
        events = Counter(e.task_uuid for e in pg_store.events(pipe.project.id))
        assert events == Counter({u: 1 for u in uuids})
        wait_until(lambda: not list(client.scan_iter(f"{SPECS_KEY_PREFIX}:*")), 10, "the specs keys deleted")


def test_small_batches_carry_their_specs(pg_store: Store, tmp_path: Path) -> None:
    # Given batches of 2 small specs and the default threshold (16 KB)
    with pipeline_for(pg_store, tmp_path, ["a", "b", "c", "d"]) as pipe:
        client = redis.Redis.from_url(pipe.redis_url)
        producer = pipe.producer(batch_size=2, max_in_flight=2, lease_seconds=120)
        run_in_thread(producer.run)
        queue = producer.plans[0].queue
        wait_until(lambda: client.llen(queue) == 2, 20, "two batches on the stage queue")
        # Then the messages hold their specs and nothing is stored beside them
        queued = _queued_args(client, queue)
        assert [len(specs) for _, specs in queued] == [2, 2]
        assert all(header["specs_key"] is None for header, _ in queued)
        assert not list(client.scan_iter(f"{SPECS_KEY_PREFIX}:*"))


def test_a_batch_whose_specs_are_gone_is_skipped(pg_store: Store, tmp_path: Path) -> None:
    # Given a batch message whose specs key no longer exists (applied already, or expired)
    with pipeline_for(pg_store, tmp_path, ["a"]) as pipe:
        app = make_celery_app(pipe.settings, pipe.pipeline)
        header = {"batch_id": "gone", "specs_key": specs_key("gone"), "stage_uuid": "x"}
        # When a worker runs it
        answered = _run_batch(app, AGENTS, "Sort", header, None)
        # Then it answers nothing and publishes no results
        assert answered == 0
        assert redis.Redis.from_url(pipe.redis_url).llen(RESULTS_QUEUE) == 0


def test_a_spec_the_worker_cannot_read_fails_its_task_and_the_rest_of_the_batch_runs(
    pg_store: Store, tmp_path: Path
) -> None:
    # Given a batch of two whose second spec a worker cannot read (a producer of another version, say)
    with pipeline_for(pg_store, tmp_path, ["good", "bad"]) as pipe:
        client = redis.Redis.from_url(pipe.redis_url)
        producer = pipe.producer(batch_size=2, max_in_flight=1, lease_seconds=120)
        producing = run_in_thread(producer.run)
        plan = producer.plans[0]
        wait_until(lambda: client.llen(plan.queue) == 1, 20, "the batch on the stage queue")
        header, specs = json.loads(message_body(client.rpop(plan.queue) or b""))[0]
        bad = next(i for i, s in enumerate(specs) if json.loads(s)["data_title"] == "bad")
        specs[bad] = json.dumps({**json.loads(specs[bad]), "created_at": "yesterday"})
        app = make_celery_app(pipe.settings, pipe.pipeline)
        push_many(pipe.redis_url, plan.queue, [task_envelope(app, plan.task_name, [header, specs], plan.queue, "[b]")])

        # When a real worker and the applier (no retries) run it
        pipe.start_worker()
        applier = pipe.applier(num_retries=0)
        run_in_thread(applier.run)
        producing.join(60)
        wait_until(lambda: applier.stats.applied + applier.stats.failed >= 2, 30, f"2 results; logs:\n{pipe.logs()}")
        applier.stop.set()

        # Then the good task moved on, and the bad one failed with the reason, listed as failed
        by_title = {t.data_title: t for t in pg_store.iter_tasks(pipe.project.id)}
        moved = [e.task_uuid for e in pg_store.events(pipe.project.id)]
        assert moved == [by_title["good"].uuid]
        failed = list_failed(pg_store, pipe.project.id)
        assert [t.data_title for t in failed] == ["bad"] and failed[0].lease_token == FAILED
        assert "not a task spec" in (failed[0].last_error or "") and "created_at" in (failed[0].last_error or "")
