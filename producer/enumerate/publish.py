"""Put a fill's stage batches on their queue, in as few broker round trips as the broker allows.

* Redis (annoflow's transport), once the queue is declared: Celery's own task
  messages (``as_task_v2``) pushed with one ``LPUSH`` round trip, without
  kombu's publishing machinery (three times the CPU per message).
* Other brokers, and a queue's first fill: kombu's batch publishing, sent again
  one message at a time with kombu's retries if the batch fails.

On Redis a batch of ``inline_bytes`` of specs or more travels by reference
(:mod:`common.batches`): its specs are set under their key in the same round
trip, before the message that names them. A batch delivered twice is applied
once: the second result no longer matches the lease.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu.exceptions import BatchPublishError

from common import redis_transport
from common.batches import INLINE_SPECS_BYTES, BatchHeader, specs_array, specs_key
from common.celery_app import make_queue

if TYPE_CHECKING:
    from producer.enumerate.plan import StagePlan

__all__ = ["BatchPublisher"]

log = logging.getLogger("annoflow.producer")

# Messages sent in one Redis round trip through kombu (a fill is usually far fewer).
_PUBLISH_BATCH = 256
# A batch's specs stay on Redis this long past its lease deadline (when its tasks are claimed again).
_SPECS_GRACE_S = 60

Batches = list[tuple[BatchHeader, list[str]]]


def _argsrepr(plan: StagePlan, header: BatchHeader) -> str:
    # What Flower shows as the task's arguments; Celery's own repr of a
    # hundred specs would cost more than encoding the message itself.
    return f"[batch {header.batch_id}: {header.size} tasks of stage '{plan.stage.title}']"


class BatchPublisher:
    """Publishes the producer's stage batches; see the module docstring.

    Args:
        app: the pipeline's Celery app (its broker decides the path).
        inline_bytes: on Redis, batches with this many bytes of specs or more travel by reference.
    """

    def __init__(self, app: Celery, inline_bytes: int = INLINE_SPECS_BYTES) -> None:
        self.app = app
        self.inline_bytes = inline_bytes
        self._declared: set[str] = set()  # queues this publisher declared

    def send(self, plan: StagePlan, batches: Batches, publisher: Any) -> None:
        """Publish one fill's batches to the stage's queue (``publisher``: a kombu producer)."""
        direct = redis_transport.pushes_directly(self.app)
        stored = self._by_reference(batches) if direct else []
        messages = [(header, None if header.specs_key else chunk) for header, chunk in batches]
        url = self.app.conf.broker_url
        if plan.queue in self._declared and direct:
            envelopes = [
                redis_transport.task_envelope(
                    self.app,
                    plan.task_name,
                    [header.model_dump(mode="json"), specs],
                    plan.queue,
                    _argsrepr(plan, header),
                )
                for header, specs in messages
            ]
            redis_transport.push_many(url, plan.queue, envelopes, stored)
            return
        if stored:  # the specs first: a message must not arrive before what it names
            redis_transport.push_many(url, plan.queue, [], stored)
        try:
            # One Redis round trip for the whole fill instead of one per message
            # (kombu sends the messages one by one on brokers that cannot batch).
            with publisher.batch(max_size=_PUBLISH_BATCH):
                for header, specs in messages:
                    self._publish(plan, header, specs, publisher)
        except BatchPublishError as e:
            # Some of the fill may have reached the queue: send it all again, one
            # message at a time with kombu's retries.
            log.warning("publishing %d batches at once failed (%s); sending each again", len(batches), e.__cause__)
            for header, specs in messages:
                self._publish(plan, header, specs, publisher)

    def _by_reference(self, batches: Batches) -> list[tuple[str, str, int]]:
        """Mark the large batches to travel by reference; return what to store for them.

        Each is (key, JSON array of the specs, seconds to keep it: until a minute past the lease deadline).
        """
        stored = []
        for header, chunk in batches:
            if sum(map(len, chunk)) >= self.inline_bytes:
                header.specs_key = specs_key(header.batch_id)
                ttl = int(header.deadline.timestamp() - time.time()) + _SPECS_GRACE_S
                stored.append((header.specs_key, specs_array(chunk), ttl))
        return stored

    def _publish(self, plan: StagePlan, header: BatchHeader, specs: list[str] | None, publisher: Any) -> None:
        # Messages go through the default exchange straight to the queue, so the queue
        # is declared once (for tools that list queues), not bound and copied per message.
        queue = make_queue(plan.queue)
        declare = [] if plan.queue in self._declared else [queue]
        self.app.send_task(
            plan.task_name,
            args=[header.model_dump(mode="json"), specs],
            queue=queue,
            producer=publisher,
            retry=True,
            declare=declare,
            argsrepr=_argsrepr(plan, header),
            kwargsrepr="{}",
        )
        self._declared.add(plan.queue)
