"""The applier's Redis reader of the results queue: taking in groups, acknowledging, recovering a dead applier's."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu.connection import Connection
from kombu.messaging import Producer

from common.redis_transport import TRANSPORT, message_body
from producer.apply.redis_results import APPLIERS_KEY, ResultReader
from producer.observe.queue_depth import RedisQueueReader
from tests.servers import require_redis

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/12"  # shared with test_redis_transport; each test removes its own keys


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    require_redis()
    client = redis.Redis.from_url(REDIS_URL)
    before = set(client.keys("*"))
    yield client
    made = set(client.keys("*")) - before
    if made:
        client.delete(*made)


@pytest.fixture
def queue(client: redis.Redis) -> str:
    return f"annoflow.test-results.{uuid.uuid4().hex}"


def _publish(queue: str, bodies: list[str]) -> None:
    """Publish JSON bodies with kombu, as the workers do."""
    with Connection(REDIS_URL, transport=TRANSPORT) as conn:
        producer = Producer(conn.channel())
        for body in bodies:
            producer.publish(
                body, exchange="", routing_key=queue, content_type="application/json", content_encoding="utf-8"
            )


def _bodies(raws: list[bytes]) -> list[str]:
    return [message_body(raw).decode() for raw in raws]


def test_take_moves_messages_in_order_and_finish_drops_them(client: redis.Redis, queue: str) -> None:
    # Given five messages published with kombu and a reader that takes at most three at once
    _publish(queue, [json.dumps({"n": n}) for n in range(5)])
    reader = ResultReader(client, queue, max_messages=3)
    reader.start()
    try:
        # When it takes twice, finishing each group
        first = reader.take(timeout=1)
        assert client.llen(reader.taken_key) == 3 and client.llen(queue) == 2
        reader.finish()
        second = reader.take(timeout=1)
        reader.finish()

        # Then the messages came oldest first, three and two, and nothing is left anywhere
        assert _bodies(first) == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
        assert _bodies(second) == ['{"n": 3}', '{"n": 4}']
        assert client.llen(queue) == 0 and not client.exists(reader.taken_key)
        # And an empty queue gives nothing once the wait is over
        assert reader.take(timeout=0.1) == []
    finally:
        reader.close()
    assert reader.id.encode() not in client.smembers(APPLIERS_KEY)


def test_a_limit_takes_fewer(client: redis.Redis, queue: str) -> None:
    # Given three messages (the applier asks for fewer after big batches, and one with --group 1)
    _publish(queue, ["a", "b", "c"])
    reader = ResultReader(client, queue, max_messages=64)
    reader.start()
    try:
        # When it takes with a limit of one, then of two
        one = reader.take(timeout=1, limit=1)
        reader.finish()
        two = reader.take(timeout=1, limit=2)
        reader.finish()

        # Then it got one, then two, in order
        assert _bodies(one) == ["a"] and _bodies(two) == ["b", "c"]
    finally:
        reader.close()


def test_finish_puts_the_requeued_messages_back_first_in_line(client: redis.Redis, queue: str) -> None:
    # Given three taken messages, one of which the applier could not apply yet
    _publish(queue, ["a", "b", "c"])
    reader = ResultReader(client, queue)
    reader.start()
    try:
        taken = reader.take(timeout=1)
        assert _bodies(taken) == ["a", "b", "c"]
        _publish(queue, ["d"])

        # When the group finishes with "b" to be tried again, and ledger commands ride along
        reader.finish(requeue=[taken[1]], also=lambda pipe: pipe.set(f"{queue}:also", "1"))

        # Then "b" is taken again before the newer "d", and the extra command ran
        assert _bodies(reader.take(timeout=1)) == ["b", "d"]
        assert client.get(f"{queue}:also") == b"1"
        reader.finish()
    finally:
        reader.close()


def test_a_dead_appliers_messages_come_back_and_a_live_ones_stay(client: redis.Redis, queue: str) -> None:
    # Given an applier that took three messages and then died (its heartbeat stops), and a live one
    _publish(queue, ["a", "b", "c"])
    dead = ResultReader(client, queue, ttl_s=0.4)
    dead.start()
    assert _bodies(dead.take(timeout=1)) == ["a", "b", "c"]
    dead._stop.set()  # what a SIGKILL does to its heartbeat
    live = ResultReader(client, queue, ttl_s=30)
    live.start()
    try:
        # When the live one sweeps before the dead one's heartbeat expired
        assert live.sweep() == 0
        assert client.llen(dead.taken_key) == 3

        # And again after it expired
        time.sleep(0.6)
        assert live.sweep() == 3

        # Then the messages are back in their order, and the dead applier is forgotten
        assert _bodies(live.take(timeout=1)) == ["a", "b", "c"]
        live.finish()
        assert not client.exists(dead.taken_key)
        assert dead.id.encode() not in client.smembers(APPLIERS_KEY)
    finally:
        live.close()


def test_taken_messages_count_as_unacknowledged_in_the_queue_gauges(client: redis.Redis, queue: str) -> None:
    # Given the gauge before, and an applier that took three messages
    gauge = RedisQueueReader(REDIS_URL)
    before = gauge.unacked()
    _publish(queue, ["a", "b", "c"])
    reader = ResultReader(client, queue)
    reader.start()
    try:
        reader.take(timeout=1)

        # Then /metrics and `annoflow status` count them as delivered and not acknowledged
        assert gauge.unacked() - before == 3
        reader.finish()
        assert gauge.unacked() == before
    finally:
        reader.close()


def test_recover_puts_back_what_a_lost_take_moved(client: redis.Redis, queue: str) -> None:
    # Given a take whose reply was lost: Redis moved a message into the applier's list, the applier never saw it
    _publish(queue, ["a"])
    reader = ResultReader(client, queue)
    reader.start()
    try:
        client.blmove(queue, reader.taken_key, 1, "RIGHT", "LEFT")

        # When the applier recovers after the connection trouble
        assert reader.recover() == 1

        # Then the message is on the queue again, taken next, and the applier is still announced
        assert _bodies(reader.take(timeout=1)) == ["a"]
        reader.finish()
        assert reader.id.encode() in client.smembers(APPLIERS_KEY)
    finally:
        reader.close()


def test_close_hands_back_what_was_taken(client: redis.Redis, queue: str) -> None:
    # Given a reader that took two messages and stops before applying them
    _publish(queue, ["a", "b"])
    reader = ResultReader(client, queue)
    reader.start()
    reader.take(timeout=1)

    # When it closes
    reader.close()

    # Then both are back on the queue, in order, and its heartbeat is gone
    other = ResultReader(client, queue)
    assert _bodies(other.take(timeout=1)) == ["a", "b"]
    other.finish()
    assert not client.exists(f"annoflow:applier:{reader.id}:alive")


def test_message_body_reads_kombu_envelopes_and_refuses_anything_else() -> None:
    # Given a base64 envelope as kombu's Redis transport writes it, a plain one, and junk
    encoded = json.dumps({"body": base64.b64encode(b'{"x": 1}').decode(), "properties": {"body_encoding": "base64"}})
    plain = json.dumps({"body": '{"x": 2}', "properties": {}})

    # Then the bodies come out, and junk says what is wrong
    assert message_body(encoded.encode()) == b'{"x": 1}'
    assert message_body(plain.encode()) == b'{"x": 2}'
    for junk in (b"not json", b"[1, 2]", b'{"body": 3}'):
        with pytest.raises(ValueError, match="not a kombu message envelope"):
            message_body(junk)


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_a_take_is_one_round_trip(client: redis.Redis, queue: str) -> None:
    # Given ten messages and a reader that takes at most four at once
    _publish(queue, [json.dumps({"n": n}) for n in range(10)])
    reader = ResultReader(client, queue, max_messages=4)
    reader.start()
    exists_before, eval_before = _calls(client, "script|exists"), _calls(client, "eval")

    # When it takes all ten, three takes
    taken = [reader.take(timeout=1) for _ in range(3)]
    reader.finish()
    reader.close()

    # Then each take ran its Lua call inline (EVAL), with no separate check that the script is loaded
    assert [len(t) for t in taken] == [4, 4, 2]
    # (at least three EVALs: other clients of this Redis may run their own meanwhile)
    assert _calls(client, "eval") - eval_before >= 3
    assert _calls(client, "script|exists") == exists_before
