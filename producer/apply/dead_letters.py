"""The dead-letter queue: results messages the applier could not use, kept with the reason.

The result applier copies every message it cannot read (not JSON, not a
``ResultBatch``, a message that failed to apply for a reason other than an
unreachable store) to ``annoflow.dead-letter`` as a :class:`DeadLetter`, and
acknowledges the original, so a bad message is never retried forever and never
lost. This module is what an operator does with them afterwards:

* :func:`peek`: the oldest few, and how many there are, without taking any off
  the queue (Redis and the embedded broker are read in place; other brokers
  deliver them and take them back unacknowledged);
* :func:`requeue`: publish each one's original message to ``annoflow.results``
  again (once whatever rejected it is fixed), then drop it: a message the applier
  still cannot use comes straight back, one applied twice is dropped as stale;
* :func:`purge`: drop them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from kombu.connection import Connection
from kombu.exceptions import OperationalError
from kombu.message import Message
from pydantic import BaseModel, ValidationError

from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE, broker_transport, make_queue
from common.redis_transport import message_body
from producer.enumerate.outages import broker_unreachable

__all__ = ["DeadLetter", "DeadLetters", "peek", "purge", "requeue", "summary"]

# What a message on the queue that no applier wrote is listed with.
_FOREIGN = "not a dead-letter record (no applier wrote it); its whole text is kept as the body"


class DeadLetter(BaseModel):
    """One message the applier could not use, as the dead-letter queue keeps it."""

    reason: str
    # The results message as it was published (the broker's raw message when it had no body).
    body: str
    at: datetime
    applier: str = ""

    @classmethod
    def of(cls, payload: bytes | str) -> DeadLetter:
        """The record in one dead-letter message body; a message no applier wrote is kept whole as the body."""
        try:
            return cls.model_validate_json(payload)
        except ValidationError:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            return cls(reason=_FOREIGN, body=text, at=datetime.now(UTC))


@dataclass(frozen=True)
class DeadLetters:
    """What :func:`peek` found: the oldest ``letters`` of ``total`` on the queue."""

    letters: list[DeadLetter]
    total: int


def peek(broker_url: str, transport_options: dict[str, Any], limit: int) -> DeadLetters:
    """The oldest ``limit`` dead letters (oldest first) and how many wait, leaving every one in place.

    Raises:
        TransientError: the broker did not answer.
    """
    if broker_url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(broker_url, socket_connect_timeout=5, socket_timeout=30)
        try:
            # kombu pushes on the left and takes from the right: the oldest are at the right end.
            raws: list[bytes] = client.lrange(DEAD_LETTER_QUEUE, -limit, -1) if limit > 0 else []  # type: ignore[assignment]
            total = int(client.llen(DEAD_LETTER_QUEUE))
        except redis.RedisError as e:
            raise broker_unreachable(broker_url, e) from e
        finally:
            client.close()
        return DeadLetters([DeadLetter.of(message_body(raw)) for raw in reversed(raws)], total)
    if broker_url.startswith("filesystem://"):
        return _peek_folder(Path(transport_options["data_folder_in"]), limit)
    with _dead_letter_queue(broker_url, transport_options) as (_, queue, total):
        # Delivered and never acknowledged: the broker takes them back when the channel closes.
        letters = [DeadLetter.of(message.body) for message in _messages(queue, min(limit, total))]
    return DeadLetters(letters, total)


def requeue(broker_url: str, transport_options: dict[str, Any], limit: int | None = None) -> int:
    """Publish up to ``limit`` (default: all) dead letters' messages to the results queue again; return how many.

    Each is acknowledged only after its message is published: should this stop
    in between, the letter stays and its message may be applied twice, which the
    leases make harmless (the second is dropped as stale).

    Raises:
        TransientError: the broker did not answer.
    """
    done = 0
    results = make_queue(RESULTS_QUEUE)
    with _dead_letter_queue(broker_url, transport_options) as (conn, queue, total):
        producer = conn.Producer()
        # Only the letters there now: one the applier rejects again while this runs stays for later.
        for message in _messages(queue, total if limit is None else min(limit, total)):
            producer.publish(
                DeadLetter.of(message.body).body,
                exchange="",
                routing_key=RESULTS_QUEUE,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                declare=[results] if done == 0 else [],
                retry=True,
            )
            message.ack()
            done += 1
    return done


def purge(broker_url: str, transport_options: dict[str, Any], limit: int | None = None) -> int:
    """Drop up to ``limit`` (default: all) dead letters, oldest first; return how many.

    Raises:
        TransientError: the broker did not answer.
    """
    done = 0
    with _dead_letter_queue(broker_url, transport_options) as (_, queue, total):
        for message in _messages(queue, total if limit is None else min(limit, total)):
            message.ack()
            done += 1
    return done


@contextmanager
def _dead_letter_queue(broker_url: str, transport_options: dict[str, Any]) -> Iterator[tuple[Connection, Any, int]]:
    """A connection, the dead-letter queue bound to it (declared, as the applier declares it), and its length."""
    transport = broker_transport(broker_url)
    with Connection(broker_url, transport=transport, transport_options=transport_options) as conn:
        try:
            conn.ensure_connection(max_retries=2, interval_start=0.5, interval_step=0.5, interval_max=1)
            queue = make_queue(DEAD_LETTER_QUEUE)(conn.default_channel)
            yield conn, queue, int(queue.queue_declare().message_count)
        except (OperationalError, OSError) as e:  # also while the caller takes and publishes
            raise broker_unreachable(broker_url, e) from e


def _messages(queue: Any, limit: int) -> Iterator[Message]:
    """Deliver up to ``limit`` messages of ``queue`` (oldest first), unacknowledged, until it is empty."""
    taken = 0
    while taken < limit:
        message = queue.get(no_ack=False)
        if message is None:
            return
        taken += 1
        yield message


def _peek_folder(folder: Path, limit: int) -> DeadLetters:
    """The embedded broker keeps one file per message, ``<ms>_<uuid>.<queue>.msg`` (fs_transport): oldest first."""
    suffix = f".{DEAD_LETTER_QUEUE}.msg"
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(suffix) and not n.startswith("."))
    except FileNotFoundError:
        return DeadLetters([], 0)
    letters = []
    for name in names[: max(limit, 0)]:
        try:
            raw = (folder / name).read_bytes()
        except FileNotFoundError:  # taken by a requeue or purge meanwhile
            continue
        letters.append(DeadLetter.of(message_body(raw)))
    return DeadLetters(letters, len(names))


def summary(letter: DeadLetter) -> dict[str, Any]:
    """What a listing shows of one letter: when, where, why, and which batch its message was."""
    batch: Any = None
    try:
        parsed = json.loads(letter.body)
        if isinstance(parsed, dict) and isinstance(parsed.get("header"), dict):
            batch = parsed["header"].get("batch_id")
    except ValueError:
        pass
    return {
        "at": letter.at.isoformat(),
        "applier": letter.applier,
        "batch_id": batch,
        "body_bytes": len(letter.body.encode()),
        "reason": letter.reason,
    }
