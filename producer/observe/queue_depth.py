"""How many messages wait in each queue of the broker (Flower shows none of this).

Celery has no portable "queue length" call, so this reads the transports'
own storage, which is what operators need for alerting on a backlog:

* Redis: kombu keeps each queue as a list named after it (plus one list per
  priority step, ``<queue>\\x06\\x16<n>``) and records every binding in a set
  ``_kombu.binding.<exchange>``; delivered-but-unacknowledged messages sit in
  the ``unacked`` hash until acked or restored; a result applier keeps what it
  took in its own list (``annoflow:applier:<id>:taken``).
* Embedded filesystem broker: one file per message, ``<ms>_<uuid>.<queue>.msg``.

Queues that annoflow always uses are reported even when nobody has declared
them yet, so a dashboard's series never vanish.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE
from producer.apply.redis_results import APPLIERS_KEY, taken_key

__all__ = ["KNOWN_QUEUES", "AmqpQueueReader", "FileQueueReader", "QueueReader", "RedisQueueReader", "make_queue_reader"]

# Reported even before anything declared them (0 is a meaningful depth).
KNOWN_QUEUES = (RESULTS_QUEUE, DEAD_LETTER_QUEUE, "totask.file", "totask.inference")

_BINDING_PREFIX = "_kombu.binding."
_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps besides 0 (which uses the bare name)
# Celery's own broadcast plumbing: fan-out exchanges, not work queues.
_INTERNAL = ("celeryev", "celery.pidbox", "reply.celery.pidbox")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class QueueReader(Protocol):
    """Reads queue depths from one broker."""

    def depths(self) -> dict[str, int]:
        """Messages waiting (ready, not delivered) per queue name."""
        ...

    def unacked(self) -> int:
        """Messages delivered to a consumer and not acknowledged yet (all queues)."""
        ...


class RedisQueueReader:
    """Queue depths from a Redis broker."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _queues(self) -> set[str]:
        names = set(KNOWN_QUEUES)
        for key in self.client.scan_iter(match=f"{_BINDING_PREFIX}*", count=500):
            exchange = _text(key)[len(_BINDING_PREFIX) :]
            if exchange in _INTERNAL or exchange.endswith(".pidbox"):
                continue
            for member in self.client.smembers(key):
                queue = _text(member).split(_SEP)[-1]
                if queue and not queue.startswith("celeryev."):
                    names.add(queue)
        return names

    def depths(self) -> dict[str, int]:
        names = sorted(self._queues())
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{name}{_SEP}{step}")
        counts = pipe.execute()
        per = 1 + len(_PRIORITY_STEPS)
        return {name: int(sum(counts[i * per : (i + 1) * per])) for i, name in enumerate(names)}

    def unacked(self) -> int:
        # kombu's hash of delivered messages, plus what each result applier took
        # (it keeps its own list per applier: producer/apply/redis_results.py).
        appliers = [_text(m) for m in self.client.smembers(APPLIERS_KEY)]
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen("unacked")
        for applier_id in appliers:
            pipe.llen(taken_key(applier_id))
        return int(sum(pipe.execute()))


class AmqpQueueReader:
    """Queue depths from an AMQP broker (passive declares: AMQP cannot list queues, so they are named)."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self.url = url
        self.queues = sorted({*KNOWN_QUEUES, *queues})

    def depths(self) -> dict[str, int]:
        from kombu.connection import Connection

        out: dict[str, int] = {}
        with Connection(self.url, connect_timeout=5) as conn:
            for name in self.queues:
                channel = conn.channel()
                try:
                    out[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
                except Exception:  # a queue nobody declared yet: nothing waits in it
                    out[name] = 0
                finally:
                    channel.close()
        return out

    def unacked(self) -> int:
        # AMQP does not expose it per connection; the broker's own management API does.
        return 0


class FileQueueReader:
    """Queue depths from the embedded filesystem broker's folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def depths(self) -> dict[str, int]:
        out = dict.fromkeys(KNOWN_QUEUES, 0)
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return out
        for name in names:
            # <ms>_<uuid>.<queue>.msg: the queue is between the first dot and ".msg".
            rest = name.partition(".")[2]
            if rest.endswith(".msg"):
                queue = rest[: -len(".msg")]
                out[queue] = out.get(queue, 0) + 1
        return out

    def unacked(self) -> int:
        # The filesystem transport moves a message out of the folder when it is delivered.
        return 0


def make_queue_reader(broker_url: str, home: Path, queues: list[str] | None = None) -> QueueReader:
    """The reader that goes with a broker URL (the embedded broker lives under ``<home>/broker``).

    ``queues`` names stage queues to report on brokers that cannot list their queues (AMQP).
    """
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisQueueReader(broker_url)
    if broker_url.startswith("amqp://"):
        return AmqpQueueReader(broker_url, queues or [])
    return FileQueueReader(Path(home) / "broker" / "queue")
