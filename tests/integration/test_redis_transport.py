"""annoflow's Redis transport: messages flow as with kombu's, through one Redis client per channel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer, Producer

from common import fs_transport
from common.celery_app import PipelineSettings, make_celery_app, make_queue
from common.redis_transport import TRANSPORT, Channel
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
