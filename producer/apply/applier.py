"""The result applier: consume the results queue and apply each message atomically.

A message is acknowledged only after its transaction commits, so a killed
applier loses nothing (the broker delivers the message again) and applies
nothing twice (the second delivery's leases no longer match: stale). A message
that is not a valid ``ResultBatch`` is rejected, logged, counted and copied to
the dead-letter queue (``annoflow.dead-letter``; a Redis list on Redis) as a
:class:`producer.apply.dead_letters.DeadLetter`, never retried forever (``annoflow
dead-letters`` lists them). After each commit the batch leaves the in-flight
ledger, which wakes the producer.

On Redis the applier takes up to ``group`` messages per round trip
(:mod:`producer.apply.redis_results`), applies them in one transaction (each message
whole: should the group fail, each is applied alone) and acknowledges them
together after the commit. On other brokers it consumes with kombu, one
message and one transaction per delivery.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import redis
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer, Producer
from pydantic import ValidationError

from common.batches import ResultBatch
from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE, broker_transport, make_queue
from common.errors import TransientError
from common.redis_transport import message_body
from common.store import Store
from common.store.apply import apply_results
from producer.apply.dead_letters import DeadLetter
from producer.apply.redis_results import ResultReader
from producer.apply.stats import ApplierStats
from producer.enumerate.inflight import Ledger, RedisLedger
from producer.enumerate.outages import BROKER_ERRORS, Backoff

if TYPE_CHECKING:
    from redis.client import Pipeline

    from producer.apply.stats import ApplyObserver

__all__ = ["ResultApplier"]

log = logging.getLogger("annoflow.applier")

# A store that is down is retried this many times (doubling the wait) before the
# message goes back to the queue for a later delivery.
_STORE_RETRIES = 5
# Fewer batches in flight than this: the applier does not linger (see ResultApplier._linger).
_LINGER_IN_FLIGHT = 16
# Results the Redis path aims to apply per transaction (it takes messages, not results:
# the next take's size follows the last group's results per message). 512 rather than 256:
# on PostgreSQL each transaction's fixed cost (begin, commit, wake-up, acknowledgement) is
# shared by twice the tasks (docs/performance.md).
_GROUP_RESULTS = 512


@dataclass(frozen=True)
class _Verdict:
    """What becomes of one message: acknowledged (applied or stale), put back, or dead-lettered."""

    action: Literal["ack", "requeue", "dead"]
    batch: ResultBatch | None = None
    reason: str = ""


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
        group: int = 64,
        linger_s: float = 0.03,
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
        self.prefetch = prefetch  # kombu brokers: messages delivered ahead
        self.group = group  # Redis: messages taken (and acknowledged) at once
        # Redis: after a group of fewer than ``group`` results (the queue is trickling:
        # small batches) while many batches are in flight, wait this long so the next
        # take finds several messages (one commit and two round trips for all of them).
        self.linger_s = linger_s
        self._group_stages: set[tuple[str, str]] = set()  # (project, stage) of the last group's batches
        self.on_applied = on_applied
        self.observer = observer  # /metrics: outcomes and apply latency
        self.stats = ApplierStats()
        self.stop = threading.Event()
        self._dead_producer: Producer | None = None

    def run(self, idle_exit: Callable[[], bool] | None = None) -> ApplierStats:
        """Apply messages until :attr:`stop` is set (or ``idle_exit()`` says so while the queue is quiet).

        A broker that does not answer, at start or later, is waited out (:mod:`producer.enumerate.outages`).
        """
        transport = broker_transport(self.broker_url)
        backoff = Backoff(self.stop, log)
        while not self.stop.is_set():
            try:
                with Connection(self.broker_url, transport=transport, transport_options=self.transport_options) as conn:
                    channel = conn.channel()
                    # Declared here, once: a declaration waits for the broker's answer, and on AMQP a wait
                    # inside a delivery's callback can take the next delivery and never see its answer.
                    make_queue(DEAD_LETTER_QUEUE)(channel).declare()
                    self._dead_producer = Producer(channel)
                    backoff.reset()
                    if self.broker_url.startswith(("redis://", "rediss://")):
                        self._run_redis(idle_exit)
                    else:
                        self._run_kombu(conn, idle_exit)
                break
            except BROKER_ERRORS as e:
                backoff.wait(e)
        if self.observer is not None:
            self.observer.flush()
        return self.stats

    def _quiet(self, idle_exit: Callable[[], bool] | None) -> bool:
        """Nothing arrived for a while: let the metrics catch up; True to stop."""
        if self.observer is not None:
            self.observer.flush()
        return idle_exit is not None and idle_exit()

    def _run_kombu(self, conn: Connection, idle_exit: Callable[[], bool] | None) -> None:
        """Any kombu broker: one message per delivery, acknowledged after its commit."""
        queue = make_queue(RESULTS_QUEUE)
        with Consumer(conn, [queue], on_message=self._on_message, prefetch_count=self.prefetch, accept=["json"]):
            while not self.stop.is_set():
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    if self._quiet(idle_exit):
                        break
                except OSError as e:
                    log.warning("broker connection trouble (%s); reconnecting", e)
                    conn.ensure_connection(max_retries=10)

    def _run_redis(self, idle_exit: Callable[[], bool] | None) -> None:
        """Redis: several messages per round trip and per transaction, acknowledged together."""
        reader = ResultReader(redis.Redis.from_url(self.broker_url), RESULTS_QUEUE, max_messages=self.group)
        reader.start()
        limit = self.group
        lost = False  # a round trip failed: a take may have moved messages we never saw
        try:
            while not self.stop.is_set():
                try:
                    if lost:
                        reader.recover()
                        lost = False
                    raws = reader.take(timeout=0.2, limit=limit)
                    if not raws:
                        if self._quiet(idle_exit):
                            break
                        continue
                    held = self._apply_group(reader, raws)
                    # About _GROUP_RESULTS results per transaction: many one-task messages,
                    # or about five batches of a hundred (memory and lock time stay small).
                    limit = max(1, _GROUP_RESULTS * len(raws) // max(held, 1))
                    if held < self.group:
                        self._linger()
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    log.warning("broker connection trouble (%s); retrying in 1s", e)
                    lost = True
                    self.stop.wait(1.0)
        finally:
            reader.close()

    def _linger(self) -> None:
        """After a small group, wait ``linger_s`` so the next group (one commit, two round trips)
        is larger; but not with only a few batches in flight (a small ``--max-in-flight``): the
        producer is then likely waiting for room, and every millisecond would hold it up.
        """
        if not isinstance(self.ledger, RedisLedger):
            return
        in_flight = sum(self.ledger.count(project, stage) for project, stage in self._group_stages)
        if in_flight >= _LINGER_IN_FLIGHT:
            self.stop.wait(self.linger_s)

    def _apply_group(self, reader: ResultReader, raws: list[bytes]) -> int:
        """Apply the messages taken together, acknowledge them in one round trip; return how many results they held."""
        verdicts: list[_Verdict | None] = []
        batches: list[ResultBatch] = []
        bodies: list[bytes] = []  # what a dead letter keeps: the body, or the raw message if it has none
        for raw in raws:
            self.stats.messages += 1
            try:
                bodies.append(message_body(raw))
                parsed = self._parse(bodies[-1])
            except ValueError as e:
                bodies.append(raw)
                parsed = str(e)
            if isinstance(parsed, str):
                verdicts.append(_Verdict("dead", reason=parsed))
            else:
                verdicts.append(None)
                batches.append(parsed)
        applied = iter(self._commit_group(batches))
        done = [v if v is not None else next(applied) for v in verdicts]
        for body, verdict in zip(bodies, done, strict=True):
            if verdict.action == "dead":
                self._dead_letter(body, verdict.reason)
        # The commits are done: the messages leave the broker (the ones to try again go back)
        # and their batches leave the in-flight ledger, in one round trip.
        acked = [v.batch for v in done if v.action == "ack" and v.batch is not None]
        entries = [(b.header.project_id, b.header.stage_uuid, b.header.batch_id) for b in acked]
        self._group_stages = {(project, stage) for project, stage, _ in entries}
        # A batch that travelled by reference is done with its specs too (common.batches).
        spec_keys = [b.header.specs_key for b in acked if b.header.specs_key]
        ledger = self.ledger
        redis_ledger = ledger if isinstance(ledger, RedisLedger) else None

        def also(pipe: Pipeline) -> None:
            if spec_keys:
                pipe.delete(*spec_keys)
            if redis_ledger is not None:
                redis_ledger.remove_many(entries, pipe)

        while True:
            try:
                reader.finish(
                    requeue=[raw for raw, v in zip(raws, done, strict=True) if v.action == "requeue"], also=also
                )
                break
            except redis.ConnectionError as e:
                # Committed but not yet acknowledged: were this applier stopped now, the
                # messages would come back and be dropped as stale. Keep trying.
                log.warning("could not acknowledge %d results messages (%s); retrying", len(raws), e)
                if self.stop.wait(1.0):
                    raise
        if redis_ledger is None:
            ledger.remove_many(entries)
        for batch in acked:
            if self.on_applied is not None:
                self.on_applied(batch)
        return sum(len(b.results) for b in batches)

    def _commit_group(self, batches: list[ResultBatch]) -> list[_Verdict]:
        """Apply several whole messages in one transaction (one commit instead of one each).

        Each message is still all or nothing. Should the group fail for a reason
        other than an unreachable store, each message is applied alone, so only
        the one at fault goes to the dead-letter queue.
        """
        if len(batches) <= 1:
            return [self._commit_one(b) for b in batches]
        try:
            action = self._commit(batches)
        except Exception:
            log.warning("%d results messages failed as one transaction; applying each alone", len(batches))
            return [self._commit_one(b) for b in batches]
        return [_Verdict(action, batch=b) for b in batches]

    # -------------------------------------------------------------- messages
    def _on_message(self, message: Message) -> None:
        self.stats.messages += 1
        parsed = self._parse(message.body)
        verdict = _Verdict("dead", reason=parsed) if isinstance(parsed, str) else self._commit_one(parsed)
        if verdict.action == "dead":
            self._dead_letter(message.body, verdict.reason)
            message.reject()
        elif verdict.action == "requeue":
            message.requeue()
        else:
            assert verdict.batch is not None
            message.ack()
            header = verdict.batch.header
            try:
                self.ledger.remove(header.project_id, header.stage_uuid, header.batch_id)
            except TransientError as e:  # the ledger in the store (RabbitMQ), unreachable just now
                log.warning("batch %s stays counted in flight until its lease deadline: %s", header.batch_id, e)
            if self.on_applied is not None:
                self.on_applied(verdict.batch)

    @staticmethod
    def _parse(body: bytes | str) -> ResultBatch | str:
        """The message as a ``ResultBatch``, or why it is not one."""
        try:
            return ResultBatch.model_validate_json(body)
        except (ValidationError, ValueError, TypeError) as e:
            return f"not a valid results message: {e}"

    def _commit_one(self, batch: ResultBatch) -> _Verdict:
        try:
            return _Verdict(self._commit([batch]), batch=batch)
        except Exception as e:  # a bug or bad data in this message: never loop on it
            log.exception("batch %s could not be applied", batch.header.batch_id)
            return _Verdict("dead", reason=f"applying failed: {type(e).__name__}: {e}")

    def _commit(self, batches: list[ResultBatch]) -> Literal["ack", "requeue"]:
        """Apply the results of ``batches`` in one transaction, retrying while the store is unreachable.

        Returns "requeue" when the store stayed unreachable (or a stop was asked for):
        nothing was written and the messages go back to the queue.
        """
        started = time.perf_counter()
        results = batches[0].results if len(batches) == 1 else [r for b in batches for r in b.results]
        for attempt in range(_STORE_RETRIES + 1):
            try:
                outcome = apply_results(
                    self.store, results, num_retries=self.num_retries, backoff_s=self.backoff_s, hold_s=self.hold_s
                )
                break
            except TransientError as e:
                if attempt == _STORE_RETRIES or self.stop.is_set():
                    ids = ", ".join(b.header.batch_id for b in batches)
                    log.error("store unreachable (%s); batches %s go back to the queue", e, ids)
                    self.stats.requeued += len(batches)
                    return "requeue"
                self.stop.wait(min(0.5 * 2**attempt, 10))  # a stop request cuts the wait short
        self.stats.add(outcome)
        if self.observer is not None:
            self.observer.applied(outcome, time.perf_counter() - started, messages=len(batches))
        return "ack"

    def _dead_letter(self, body: bytes | str, reason: str) -> None:
        """Keep a copy of a message the applier cannot use, with the reason, on the dead-letter queue."""
        self.stats.dead_letters += 1
        if self.observer is not None:
            self.observer.dead_letter()
        log.error("dead letter: %s", reason[:500])
        raw = body if isinstance(body, bytes) else str(body).encode()
        assert self._dead_producer is not None
        letter = DeadLetter(
            reason=reason, body=raw.decode("utf-8", "replace"), at=datetime.now(UTC), applier=socket.gethostname()
        )
        self._dead_producer.publish(
            letter.model_dump(mode="json"),
            exchange="",  # the default exchange: straight to the queue of that name, declared in run()
            routing_key=DEAD_LETTER_QUEUE,
            serializer="json",
            delivery_mode=2,
        )
