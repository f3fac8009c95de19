"""Dead letters on Redis and on the embedded broker: listed in place, sent to the applier again, dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.connection import Connection

from common.batches import ResultBatch
from common.celery_app import (
    DEAD_LETTER_QUEUE,
    RESULTS_QUEUE,
    PipelineSettings,
    broker_transport,
    broker_url,
    make_queue,
    transport_options,
)
from common.models import TaskCompletionResult
from common.settings import Settings
from common.store import Store, TaskRecord
from common.store.leases import claim_tasks
from common.workflow import load_workflow
from producer.apply.applier import ResultApplier
from producer.apply.dead_letters import DeadLetter, DeadLetters, peek, purge, requeue, summary
from producer.enumerate.inflight import make_ledger
from tests.helpers import batch_header, make_units
from tests.integration.pipeline_env import WORKFLOW, free_redis_db
from tests.servers import require_rabbitmq, require_redis

pytestmark = pytest.mark.integration

MALFORMED = "{not json"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


@dataclass
class Env:
    url: str
    options: dict[str, Any]
    home: Path
    store: Store

    def publish(self, queue: str, body: Any, **kw: Any) -> None:
        with Connection(self.url, transport=broker_transport(self.url), transport_options=self.options) as conn:
            conn.Producer().publish(body, exchange="", routing_key=queue, declare=[make_queue(queue)], **kw)

    def apply_all(self, messages: int) -> ResultApplier:
        """Run a real applier until it has read ``messages`` messages and the queue is quiet."""
        applier = ResultApplier(
            self.store, self.url, self.options, make_ledger(self.url, self.home, self.store), num_retries=0
        )
        applier.run(idle_exit=lambda: applier.stats.messages >= messages)
        return applier


@pytest.fixture(params=["redis", "embedded", "amqp"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """Each broker kind: Redis (a free database), the embedded one (under tmp_path), RabbitMQ (its default vhost)."""
    db, url = None, ""
    if request.param == "redis":
        require_redis()
        db = free_redis_db()
        url = f"redis://127.0.0.1:6379/{db}"
    elif request.param == "amqp":
        require_rabbitmq()
        url = AMQP_URL
    _clear(url)
    settings = Settings(broker_url=url, home=tmp_path / "home")
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        yield Env(broker_url(settings), transport_options(settings, PipelineSettings()), tmp_path / "home", store)
    finally:
        store.close()
        _clear(url)


def _clear(url: str) -> None:
    """Empty the broker's pipeline queues (RabbitMQ's are shared by the whole vhost: deleted)."""
    if url.startswith("redis://"):
        redis.Redis.from_url(url).flushdb()
    elif url.startswith("amqp://"):
        with Connection(url) as conn:
            for name in (RESULTS_QUEUE, DEAD_LETTER_QUEUE):
                make_queue(name)(conn.default_channel).delete()


def _claimed_result(store: Store) -> tuple[TaskRecord, str, str]:
    """One task claimed in stage Sort, its results message routing it 'done', and Complete's uuid."""
    project = store.create_project("dead", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(["item-0"]))
    wf = store.workflow(project.id)
    sort = wf.stage("Sort")
    (task,) = claim_tasks(store, project.id, sort.uuid, 1, 600)
    done = next(p.uuid for p in sort.pathways if p.name == "done")
    result = TaskCompletionResult(
        task_uuid=task.uuid, stage_uuid=sort.uuid, success=True, pathway=done, lease_token=task.lease_token
    )
    body = ResultBatch(header=batch_header("b-dead"), results=[result]).model_dump_json()
    return task, body, wf.stage("Complete").uuid


def test_dead_letters_are_listed_in_place_sent_again_and_dropped(env: Env) -> None:
    # Given a dead letter holding a valid results message (as the applier keeps one it failed to
    # apply, say while it pointed at the wrong store) ...
    task, body, complete = _claimed_result(env.store)
    kept = DeadLetter(reason="applying failed: the store was not reachable", body=body, at=datetime.now(UTC))
    env.publish(DEAD_LETTER_QUEUE, kept.model_dump(mode="json"), serializer="json")
    # ... and a malformed message that a real applier rejects
    env.publish(RESULTS_QUEUE, MALFORMED, content_type="application/json", content_encoding="utf-8")
    assert env.apply_all(1).stats.dead_letters == 1

    # When they are listed, twice
    first, second = peek(env.url, env.options, 10), peek(env.url, env.options, 10)

    # Then both are shown oldest first with their reasons, and listing took none off the queue
    assert first.total == second.total == 2
    assert [letter.body for letter in first.letters] == [body, MALFORMED] == [s.body for s in second.letters]
    assert "not a valid results message" in first.letters[1].reason and first.letters[1].applier
    assert summary(first.letters[0])["batch_id"] == "b-dead" and summary(first.letters[1])["batch_id"] is None
    # and a limit shows the oldest only
    assert [letter.body for letter in peek(env.url, env.options, 1).letters] == [body]

    # When both are sent to the applier again
    assert requeue(env.url, env.options) == 2
    applier = env.apply_all(2)

    # Then the valid message is applied (the task moved on), the malformed one is back as a dead letter
    assert (applier.stats.applied, applier.stats.dead_letters) == (1, 1)
    assert env.store.get_task(task.uuid).stage_uuid == complete
    left = peek(env.url, env.options, 10)
    assert left.total == 1 and [letter.body for letter in left.letters] == [MALFORMED]

    # When the rest is purged
    assert purge(env.url, env.options) == 1

    # Then none is left, on the dead-letter queue or the results queue
    assert peek(env.url, env.options, 10).total == 0
    assert env.apply_all(0).stats.messages == 0


def test_a_message_no_applier_wrote_is_listed_whole(env: Env) -> None:
    # Given a message someone pushed onto the dead-letter queue by hand
    env.publish(DEAD_LETTER_QUEUE, "left here by hand", content_type="text/plain", content_encoding="utf-8")

    # When it is listed
    (letter,) = peek(env.url, env.options, 10).letters

    # Then it is shown as not written by an applier, its whole text kept as the body
    assert letter.body == "left here by hand" and "not a dead-letter record" in letter.reason


def test_nothing_to_list_send_again_or_drop(env: Env) -> None:
    # Given a broker on which no applier has rejected anything (on RabbitMQ, no queue yet)
    # When the dead letters are listed, sent again and purged
    # Then each finds none
    assert peek(env.url, env.options, 10) == DeadLetters([], 0)
    assert (requeue(env.url, env.options), purge(env.url, env.options)) == (0, 0)


def test_a_requeue_takes_only_the_letters_there_when_it_starts(env: Env) -> None:
    # Given 100 malformed messages kept as dead letters, and an applier running meanwhile,
    # which rejects each of them again as soon as it comes back
    for n in range(100):
        letter = DeadLetter(reason="not a valid results message", body=f"{{bad {n}", at=datetime.now(UTC))
        env.publish(DEAD_LETTER_QUEUE, letter.model_dump(mode="json"), serializer="json")
    applier = ResultApplier(env.store, env.url, env.options, make_ledger(env.url, env.home, env.store), num_retries=0)
    thread = threading.Thread(target=applier.run, daemon=True)
    thread.start()
    try:
        # When they are all sent to the applier again
        sent = requeue(env.url, env.options)
        deadline = time.monotonic() + 20
        while applier.stats.dead_letters < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        applier.stop.set()
        thread.join(10)

    # Then the requeue sent each once and stopped, though rejected ones came back while it ran
    assert sent == 100
    assert applier.stats.dead_letters == 100
    assert sorted(letter.body for letter in peek(env.url, env.options, 200).letters) == sorted(
        f"{{bad {n}" for n in range(100)
    )
