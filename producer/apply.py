"""The result applier: consume the results queue and apply each message in one transaction.

A message is acknowledged only after its transaction commits, so a killed
applier loses nothing (the broker delivers the message again) and applies
nothing twice (the second delivery's leases no longer match: stale). A message
that is not a valid ``ResultBatch`` is rejected, logged, counted and copied to
the dead-letter queue (``annoflow.dead-letter``; a Redis list on Redis), never
retried forever. After each commit the batch leaves the in-flight ledger, which
wakes the producer.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer, Producer
from pydantic import ValidationError

from common.batches import ResultBatch
from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE, broker_transport, make_queue
from common.errors import TransientError
from common.store import Store
from common.store.apply import apply_results
from producer.inflight import Ledger

if TYPE_CHECKING:
    from producer.apply_stats import ApplyObserver

__all__ = ["ApplierStats", "ResultApplier"]

log = logging.getLogger("annoflow.applier")

# A store that is down is retried this many times (doubling the wait) before the
# message goes back to the queue for a later delivery.
_STORE_RETRIES = 5


@dataclass
class ApplierStats:
    """Counts since the applier started."""

    messages: int = 0
    applied: int = 0
    stale: int = 0
    retried: int = 0
    failed: int = 0
    dead_letters: int = 0
    requeued: int = 0
    moved: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "stale": self.stale,
            "retried": self.retried,
            "failed": self.failed,
            "dead_letters": self.dead_letters,
            "requeued": self.requeued,
        }


class ResultApplier:
    """Consumes ``annoflow.results``; see the module docstring."""

    def __init__(
        self,
        store: Store,
        broker_url: str,
        transport_options: dict[str, Any],
        ledger: Ledger,
        *,
        num_retries: int = 3,
        backoff_s: float = 1.0,
        hold_s: float = 0.0,
        prefetch: int = 4,
        on_applied: Callable[[ResultBatch], None] | None = None,
        observer: ApplyObserver | None = None,
    ) -> None:
        self.store = store
        self.broker_url = broker_url
        self.transport_options = transport_options
        self.ledger = ledger
        self.num_retries = num_retries
        self.backoff_s = backoff_s
        self.hold_s = hold_s
        self.prefetch = prefetch
        self.on_applied = on_applied
        self.observer = observer  # /metrics: outcomes and apply latency
        self.stats = ApplierStats()
        self.stop = threading.Event()
        self._dead_producer: Producer | None = None

    def run(self, idle_exit: Callable[[], bool] | None = None) -> ApplierStats:
        """Apply messages until :attr:`stop` is set (or ``idle_exit()`` says so while the queue is quiet)."""
        queue = make_queue(RESULTS_QUEUE)
        transport = broker_transport(self.broker_url)
        with Connection(self.broker_url, transport=transport, transport_options=self.transport_options) as conn:
            self._dead_producer = Producer(conn.channel())
            with Consumer(conn, [queue], on_message=self._on_message, prefetch_count=self.prefetch, accept=["json"]):
                while not self.stop.is_set():
                    try:
                        conn.drain_events(timeout=0.2)
                    except TimeoutError:
                        if self.observer is not None:
                            self.observer.flush()  # quiet queue: the metrics catch up
                        if idle_exit is not None and idle_exit():
                            break
                    except OSError as e:
                        log.warning("broker connection trouble (%s); reconnecting", e)
                        conn.ensure_connection(max_retries=10)
        if self.observer is not None:
            self.observer.flush()
        return self.stats

    # -------------------------------------------------------------- messages
    def _on_message(self, message: Message) -> None:
        self.stats.messages += 1
        try:
            batch = ResultBatch.model_validate_json(message.body)
        except (ValidationError, ValueError, TypeError) as e:
            self._dead_letter(message, f"not a valid results message: {e}")
            return
        started = time.perf_counter()
        for attempt in range(_STORE_RETRIES + 1):
            try:
                outcome = apply_results(
                    self.store,
                    batch.results,
                    num_retries=self.num_retries,
                    backoff_s=self.backoff_s,
                    hold_s=self.hold_s,
                )
                break
            except TransientError as e:
                if attempt == _STORE_RETRIES or self.stop.is_set():
                    log.error("store unreachable (%s); batch %s goes back to the queue", e, batch.header.batch_id)
                    self.stats.requeued += 1
                    message.requeue()
                    return
                self.stop.wait(min(0.5 * 2**attempt, 10))  # a stop request cuts the wait short
            except Exception as e:  # a bug or bad data in this message: never loop on it
                log.exception("batch %s could not be applied", batch.header.batch_id)
                self._dead_letter(message, f"applying failed: {type(e).__name__}: {e}")
                return
        message.ack()
        self.ledger.remove(batch.header.project_id, batch.header.stage_uuid, batch.header.batch_id)
        s = self.stats
        s.applied += outcome.applied
        s.stale += outcome.stale
        s.retried += outcome.retried
        s.failed += outcome.failed
        for stage, n in outcome.moved.items():
            s.moved[stage] = s.moved.get(stage, 0) + n
        if self.observer is not None:
            self.observer.applied(outcome, time.perf_counter() - started)
        if self.on_applied is not None:
            self.on_applied(batch)

    def _dead_letter(self, message: Message, reason: str) -> None:
        """Reject ``message`` and keep a copy with the reason on the dead-letter queue."""
        self.stats.dead_letters += 1
        if self.observer is not None:
            self.observer.dead_letter()
        log.error("dead letter: %s", reason[:500])
        raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        queue = make_queue(DEAD_LETTER_QUEUE)
        assert self._dead_producer is not None
        self._dead_producer.publish(
            {
                "reason": reason,
                "body": raw.decode("utf-8", "replace"),
                "at": datetime.now(UTC).isoformat(),
                "applier": socket.gethostname(),
            },
            exchange=queue.exchange,
            routing_key=DEAD_LETTER_QUEUE,
            serializer="json",
            declare=[queue],
            delivery_mode=2,
        )
        message.reject()
