"""annoflow's Redis transport: messages flow as with kombu's, through one client per channel or pushed straight."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer, Producer

from common import fs_transport, redis_transport
from common.celery_app import PipelineSettings, make_celery_app, make_queue
from common.redis_transport import TRANSPORT, Channel, envelope, message_body, push_json, push_many, task_envelope
from common.settings import Settings
from tests.servers import require_redis

pytestmark = pytest.mark.integration

REDIS_DB = 12  # this module's own database; it removes only the keys it made


@pytest.fixture
def url() -> Iterator[str]:
    require_redis()
    yield f"redis://127.0.0.1:6379/{REDIS_DB}"


def test_messages_round_trip_through_one_client_per_channel(url: str) -> None:
    # Given a kombu connection on annoflow's Redis transport and a fresh queue
    name = f"annoflow.test-transport.{uuid.uuid4().hex}"
    queue = make_queue(name)
    received: list[dict[str, int]] = []

    def on_message(message: Message) -> None:
        received.append(message.decode())
        message.ack()

    try:
        with Connection(url, transport=TRANSPORT) as conn:
            channel = conn.channel()
            assert isinstance(channel, Channel)
            # When two messages are published through the default exchange and consumed with acks
            producer = Producer(channel)
            for n in (1, 2):
                producer.publish({"n": n}, exchange="", routing_key=name, serializer="json", declare=[queue])
            with Consumer(conn, [queue], on_message=on_message, accept=["json"], prefetch_count=2):
                while len(received) < 2:
                    conn.drain_events(timeout=5)
            # Then both arrived in order, nothing is left unacknowledged, and every
            # publish and acknowledgement went through the same client
            assert received == [{"n": 1}, {"n": 2}]
            assert channel._create_client() is channel._create_client()
            assert redis.Redis.from_url(url).llen(name) == 0
    finally:
        client = redis.Redis.from_url(url)
        client.delete(name, f"_kombu.binding.{name}")


def test_celery_apps_use_it_only_for_redis_urls(tmp_path: Path) -> None:
    # Given the same settings with a Redis broker, with the embedded one, and with AMQP
    pipeline = PipelineSettings()
    on_redis = make_celery_app(Settings(broker_url="redis://127.0.0.1:6379/12", home=tmp_path), pipeline)
    embedded = make_celery_app(Settings(home=tmp_path), pipeline)
    on_amqp = make_celery_app(Settings(broker_url="amqp://127.0.0.1:5672//", home=tmp_path), pipeline)
    # When their broker transports are read
    # Then the Redis app names this transport, the embedded one the atomic filesystem
    # transport, and AMQP kombu's own
    assert on_redis.conf.broker_transport == TRANSPORT
    assert embedded.conf.broker_transport == fs_transport.TRANSPORT
    assert on_amqp.conf.broker_transport is None
    # and only the Redis app's messages may be pushed straight to their lists
    assert [redis_transport.pushes_directly(a) for a in (on_redis, embedded, on_amqp)] == [True, False, False]


def _consume(url: str, name: str, n: int) -> list[Message]:
    """Consume ``n`` messages of queue ``name`` with kombu, as Celery and the applier's fallback do."""
    received: list[Message] = []

    def on_message(message: Message) -> None:
        received.append(message)
        message.ack()

    with (
        Connection(url, transport=TRANSPORT) as conn,
        Consumer(conn, [make_queue(name)], on_message=on_message, accept=["json"], prefetch_count=n),
    ):
        while len(received) < n:
            conn.drain_events(timeout=5)
    return received


def test_pushed_messages_are_read_by_kombu_in_order(url: str) -> None:
    # Given three JSON messages pushed straight to a queue, two of them in one round trip
    name = f"annoflow.test-push.{uuid.uuid4().hex}"
    try:
        push_json(url, name, '{"n": 1}')
        push_many(url, name, [envelope(f'{{"n": {n}}}', name) for n in (2, 3)])
        # When a kombu consumer reads the queue
        received = _consume(url, name, 3)
        # Then it decodes each body as JSON, in the order pushed, and message_body reads the raw form
        assert [m.decode() for m in received] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert all(m.content_type == "application/json" for m in received)
        assert message_body(envelope('{"n": 4}', name).encode()) == b'{"n": 4}'
    finally:
        redis.Redis.from_url(url).delete(name, f"_kombu.binding.{name}")


def test_a_pushed_task_message_matches_what_celery_sends(url: str, tmp_path: Path) -> None:
    # Given the same task sent by Celery's send_task and pushed as task_envelope builds it
    app = make_celery_app(Settings(broker_url=url, home=tmp_path), PipelineSettings())
    sent, pushed = (f"annoflow.test-task.{uuid.uuid4().hex}" for _ in range(2))
    args = [{"batch_id": "b1"}, ['{"uuid": "x"}']]
    client = redis.Redis.from_url(url)
    try:
        app.send_task("annoflow.stage.p.s", args=args, queue=make_queue(sent), argsrepr="[batch b1]", kwargsrepr="{}")
        push_many(url, pushed, [task_envelope(app, "annoflow.stage.p.s", args, pushed, "[batch b1]")])
        # When both are read back as a Celery worker reads them
        a, b = _consume(url, sent, 1)[0], _consume(url, pushed, 1)[0]
        # Then body, task headers and properties agree, apart from the ids that are new per message
        assert (
            a.decode() == b.decode() == [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
        )
        per_message = {"id", "root_id", "origin"}
        assert {k: v for k, v in a.headers.items() if k not in per_message} == {
            k: v for k, v in b.headers.items() if k not in per_message
        }
        assert b.headers["id"] == b.headers["root_id"] == b.properties["correlation_id"]
        assert b.delivery_info["routing_key"] == pushed and b.properties["delivery_mode"] == 2
        # And each message of the same task gets its own ids (the headers are built once per task name)
        again = json.loads(task_envelope(app, "annoflow.stage.p.s", args, pushed, "[batch b2]"))
        assert again["headers"]["id"] not in (b.headers["id"], a.headers["id"])
        assert again["headers"]["argsrepr"] == "[batch b2]"
        assert again["properties"]["correlation_id"] == again["headers"]["id"]
    finally:
        client.delete(sent, pushed, f"_kombu.binding.{sent}", f"_kombu.binding.{pushed}")


def test_pushing_to_an_unreachable_redis_gives_up_with_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a Redis URL where nothing listens, and no waits between the tries
    monkeypatch.setattr(redis_transport, "_RETRY_WAITS", [0.0, 0.0])
    # When a message is pushed there
    # Then every try fails and the last error reaches the caller (the message is not lost silently)
    with pytest.raises(redis.ConnectionError):
        push_json("redis://127.0.0.1:1/0", "annoflow.nowhere", "{}")
