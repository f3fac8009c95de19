"""The queue pipeline end to end: real Celery workers on Redis, results applied into PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu.exceptions import BatchPublishError
from kombu.transport.redis import PublishBatch

from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE
from common.enums import Action
from common.specs import build_specs
from common.store import ActionRequest, Store
from common.store.leases import claim_tasks
from common.workflow import load_workflow
from producer.enumerate import produce
from producer.enumerate.inflight import KEY_PREFIX as LEDGER_PREFIX
from tests.conftest import _postgres_store
from tests.helpers import make_units
from tests.integration.pipeline_agents import runner
from tests.integration.pipeline_env import AGENTS, ROOT, WORKFLOW, pipeline_for, run_in_thread, wait_until
from tests.servers import require_redis
from workers.tasks import publish_results

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_store() -> Iterator[Store]:
    require_redis()
    yield from _postgres_store()


def _stage_counts(store: Store, project_id: str) -> dict[str, int]:
    wf = store.workflow(project_id)
    return {wf.stages[s].title: sum(by.values()) for s, by in store.counts(project_id).items()}


def test_full_run_moves_every_task_once(pg_store: Store, tmp_path: Path) -> None:
    # Given 40 tasks in the agent stage and a worker with 2 processes
    titles = [f"item-{i}" for i in range(30)] + [f"skip-{i}" for i in range(10)]
    with pipeline_for(pg_store, tmp_path, titles) as pipe:
        pipe.start_worker()
        producer = pipe.producer(batch_size=7, max_in_flight=3)
        applier = pipe.applier(num_retries=1)
        applying = run_in_thread(applier.run)

        # When the producer drains the stage
        stats = producer.run()
        wait_until(lambda: applier.stats.applied >= 40, 30, f"40 applied results; logs:\n{pipe.logs()}")
        applier.stop.set()
        applying.join(5)

        # Then every task moved along its pathway, with exactly one event each
        assert stats.total_tasks == 40
        assert _stage_counts(pg_store, pipe.project.id) == {"Complete": 30, "Archive": 10}
        events = pg_store.events(pipe.project.id)
        assert Counter(e.task_uuid for e in events) == Counter(
            {t.uuid: 1 for t in pg_store.iter_tasks(pipe.project.id)}
        )
        assert {e.actor for e in events} == {"agent:Sort"}
        assert applier.stats.stale == 0 and applier.stats.dead_letters == 0


def test_a_fill_whose_batched_publish_failed_is_sent_again_and_applied_once(
    pg_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a broker whose first batched publish reaches Redis but then reports a failure
    # (kombu cannot tell whether the messages arrived)
    real_flush = PublishBatch.flush
    flushes: list[int] = []

    def flaky_flush(self: PublishBatch) -> None:
        flushes.append(1)
        real_flush(self)
        if len(flushes) == 1:
            raise BatchPublishError("Redis publish batch failed; delivery is uncertain") from ConnectionError("reset")

    monkeypatch.setattr(PublishBatch, "flush", flaky_flush)
    with pipeline_for(pg_store, tmp_path, [f"item-{i}" for i in range(6)]) as pipe:
        pipe.start_worker()
        producer = pipe.producer(batch_size=2, max_in_flight=3)
        applier = pipe.applier()
        applying = run_in_thread(applier.run)

        # When the producer drains the stage (its one fill of three batches is sent again, one by one)
        stats = producer.run()
        wait_until(lambda: applier.stats.applied + applier.stats.stale >= 12, 30, f"both copies; logs:\n{pipe.logs()}")
        applier.stop.set()
        applying.join(5)

        # Then each task moved once; the second copy of each batch was dropped as stale
        assert stats.total_tasks == 6 and sum(stats.batches.values()) == 3
        assert _stage_counts(pg_store, pipe.project.id) == {"Complete": 6}
        assert Counter(e.task_uuid for e in pg_store.events(pipe.project.id)) == Counter(
            {t.uuid: 1 for t in pg_store.iter_tasks(pipe.project.id)}
        )
        assert (applier.stats.applied, applier.stats.stale) == (6, 6)


def test_result_for_task_a_person_moved_is_stale(pg_store: Store, tmp_path: Path) -> None:
    # Given a claimed task whose handler ran, but a person moved the task before the result came back
    with pipeline_for(pg_store, tmp_path, ["item-0"]) as pipe:
        runner.bind(pg_store.workflow(pipe.project.id))
        stage = pg_store.workflow(pipe.project.id).stage("Sort")
        claimed = claim_tasks(pg_store, pipe.project.id, stage.uuid, 1, 60)
        spec = build_specs(pg_store, pipe.project, stage, claimed, include_labels=False)[0]
        results = runner.agent_for(stage.uuid)([spec.model_dump_json()])
        pg_store.act(ActionRequest(claimed[0].uuid, Action.PROCEED, by="lead@acme.com", pathway="skip"))
        before = pg_store.get_task(claimed[0].uuid)

        # When the worker's result message arrives through the results queue
        header = {
            "batch_id": "b1",
            "project_id": pipe.project.id,
            "project_name": "pipe",
            "stage_uuid": stage.uuid,
            "stage_key": "Sort",
            "size": 1,
            "published_at": "2026-01-01T00:00:00Z",
            "deadline": "2026-01-01T00:01:00Z",
        }
        from common.celery_app import make_celery_app

        publish_results(make_celery_app(pipe.settings, pipe.pipeline), header, results, "test")
        applier = pipe.applier()
        run_in_thread(applier.run)
        wait_until(lambda: applier.stats.messages == 1, 10, "the result message")
        applier.stop.set()

        # Then it is counted stale and the task stays where the person put it
        assert applier.stats.stale == 1 and applier.stats.applied == 0
        after = pg_store.get_task(claimed[0].uuid)
        assert (after.stage_uuid, after.version) == (before.stage_uuid, before.version)
        assert [e.actor for e in pg_store.events(pipe.project.id)] == ["lead@acme.com"]


def test_malformed_results_go_to_dead_letter_once(pg_store: Store, tmp_path: Path) -> None:
    # Given two malformed messages on the results queue: not JSON, and JSON of the wrong shape
    with pipeline_for(pg_store, tmp_path, ["item-0"]) as pipe:
        from kombu import Connection

        from common.celery_app import make_queue

        queue = make_queue(RESULTS_QUEUE)
        with Connection(pipe.redis_url) as conn:
            producer = conn.Producer()
            published = ["{not json", json.dumps({"header": {"batch_id": 1}, "results": "x"})]
            for body in published:
                producer.publish(
                    body,
                    exchange=queue.exchange,
                    routing_key=RESULTS_QUEUE,
                    content_type="application/json",
                    content_encoding="utf-8",
                    declare=[queue],
                )

        # When the applier consumes them
        applier = pipe.applier()
        run_in_thread(applier.run)
        wait_until(lambda: applier.stats.dead_letters == 2, 10, "two dead letters")
        applier.stop.set()

        # Then both are counted, kept on the dead-letter list with the reason, and gone from the results queue
        client = redis.Redis.from_url(pipe.redis_url)
        envelopes = [json.loads(raw) for raw in client.lrange(DEAD_LETTER_QUEUE, 0, -1)]
        kept = [json.loads(base64.b64decode(e["body"])) for e in envelopes]
        assert len(kept) == 2 and all("not a valid results message" in k["reason"] for k in kept)
        # and each keeps the message as it was published, not the broker's envelope around it
        assert sorted(k["body"] for k in kept) == sorted(published)
        assert client.llen(RESULTS_QUEUE) == 0
        assert applier.stats.applied == 0 and applier.stats.messages == 2


def test_embedded_run_needs_no_servers(tmp_path: Path) -> None:
    # Given a project in an embedded SQLite store, and no broker or store URL
    home = tmp_path / ".annoflow"
    store = Store.open(f"sqlite:///{home / 'annoflow.db'}")
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units([f"i-{n}" for n in range(12)]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env.update(ANNOFLOW_HOME=str(home), PYTHONPATH=str(ROOT))

    # When 'annoflow run' runs producer, applier and 2 worker processes
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            "--project",
            "pipe",
            "--agents",
            AGENTS,
            "--workers",
            "2",
            "--task-batch-size",
            "5",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    # Then it exits when drained, every task moved, through the filesystem broker under ./.annoflow
    assert done.returncode == 0, done.stdout + done.stderr
    assert _stage_counts(store, project.id) == {"Complete": 12}
    assert (home / "broker" / "queue").is_dir()
    assert "applied 12" in done.stdout


def test_a_deep_pipeline_is_filled_a_few_thousand_tasks_at_a_time(
    pg_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given room for 10 batches of 2, but fills of at most 4 tasks, and no worker yet
    monkeypatch.setattr(produce, "_FILL_TASKS", 4)
    with pipeline_for(pg_store, tmp_path, [f"item-{i}" for i in range(12)]) as pipe:
        client = redis.Redis.from_url(pipe.redis_url)
        producer = pipe.producer(batch_size=2, max_in_flight=10, lease_seconds=120)
        run_in_thread(producer.run)
        # When the producer has published every task
        wait_until(lambda: client.llen(producer.plans[0].queue) == 6, 20, "six batches on the stage queue")
        # Then they went out in fills of at most two batches (a fill's batches share one lease deadline)
        ledger = f"{LEDGER_PREFIX}:{pipe.project.id}:{producer.plans[0].stage.uuid}"
        deadlines = Counter(score for _, score in client.zrange(ledger, 0, -1, withscores=True))
        assert sum(deadlines.values()) == 6 and max(deadlines.values()) <= 2 and len(deadlines) >= 3
