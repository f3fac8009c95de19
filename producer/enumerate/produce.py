"""The producer: claim each agent stage's free tasks, publish them as batches, keep the queues fed.

For every agent stage of the runner it claims tasks that hold no live lease
(one statement), builds their specs (two queries), and publishes messages of
``batch_size`` specs to the stage's queue, keeping at most ``max_in_flight``
published-but-not-applied batches per stage (the in-flight ledger). It wakes
as soon as a batch is applied (room, and maybe new work routed into an agent
stage) or every ``refresh_every`` seconds; tasks whose lease expired (a lost
message, a killed worker) are claimed and published again. A stop request
(SIGTERM) stops the claiming; what is in flight is applied by the applier.
How a fill reaches the broker is :mod:`producer.enumerate.publish`'s business.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import update

from common.batches import INLINE_SPECS_BYTES, BatchHeader
from common.errors import InvalidInputError
from common.specs import build_spec_json
from common.store import Store
from common.store.leases import HOLD_PREFIX, ClaimCursor, claim_tasks, count_live_leases, next_retry_at
from common.store.lifecycle import now
from common.store.records import ProjectRecord
from common.store.schema import tasks
from common.store.wakeups import WorkSignal, listen
from producer.enumerate.inflight import Ledger
from producer.enumerate.outages import OUTAGES, Backoff
from producer.enumerate.plan import ProduceObserver, StagePlan
from producer.enumerate.publish import BatchPublisher

__all__ = ["ProduceStats", "Producer"]

log = logging.getLogger("annoflow.producer")

# The longest the producer sleeps between looks at the ledger while it waits.
_POLL_S = 0.02
# The most tasks one fill claims (at least one batch).
_FILL_TASKS = 5000


@dataclass
class ProduceStats:
    """What the producer published, per stage UUID."""

    batches: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)

    @property
    def total_tasks(self) -> int:
        return sum(self.tasks.values())


class Producer:
    """Feeds the stage queues of one project; see the module docstring."""

    def __init__(
        self,
        store: Store,
        app: Celery,
        ledger: Ledger,
        project: ProjectRecord,
        plans: list[StagePlan],
        *,
        batch_size: int = 100,
        max_in_flight: int = 8,
        refresh_every: float | None = None,
        lease_seconds: float = 600.0,
        max_tasks_per_stage: int | None = None,
        observer: ProduceObserver | None = None,
        inline_bytes: int = INLINE_SPECS_BYTES,
        wakeups: WorkSignal | None = None,
    ) -> None:
        if batch_size < 1 or max_in_flight < 1:
            raise InvalidInputError("--task-batch-size and --max-in-flight must be at least 1")
        self.store = store
        self.app = app
        self.ledger = ledger
        self.project = project
        self.plans = plans
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.refresh_every = refresh_every
        self.lease_seconds = lease_seconds
        self.max_tasks_per_stage = max_tasks_per_stage
        # On Redis, batches with inline_bytes of specs or more travel by reference (common.batches).
        self.publisher = BatchPublisher(app, inline_bytes)
        self.observer = observer  # /metrics: enumerate latency and tasks published
        # Refill a stage once this many of its batches are applied (see _fill).
        self._refill = max(1, max_in_flight // 4)
        self.stats = ProduceStats()
        self.stop = threading.Event()
        # Commits of other processes wake the waiting producer (common.store.wakeups);
        # None: run() listens on the store's own database.
        self.wakeups = wakeups
        # Per stage: claims start after the tasks already in flight (see ClaimCursor).
        self._cursors: dict[str, ClaimCursor] = {}

    # ---------------------------------------------------------------- running
    def release_holds(self) -> int:
        """Free the tasks a handler asked to keep in their stage, so this run takes them again."""
        with self.store.write() as conn:
            done = conn.execute(
                update(tasks)
                .where(
                    tasks.c.project_id == self.project.id,
                    tasks.c.stage_uuid.in_([p.stage.uuid for p in self.plans]),
                    tasks.c.lease_token.startswith(HOLD_PREFIX),
                )
                .values(lease_token=None, lease_deadline=None)
            )
        return int(done.rowcount)

    def run(self) -> ProduceStats:
        """Feed the queues until drained (no ``refresh_every``) or until :attr:`stop` is set.

        While the broker or the store does not answer (at start, or for a while
        during the run), it waits and tries again (:mod:`producer.enumerate.outages`).
        """
        own_signal = self.wakeups is None
        if self.wakeups is None:
            self.wakeups = listen(self.store.engine)
        try:
            return self._run(self.wakeups)
        finally:
            if own_signal:
                self.wakeups.close()
                self.wakeups = None

    def _run(self, wakeups: WorkSignal) -> ProduceStats:
        holds_released = False
        last_refresh = time.monotonic()
        backoff = Backoff(self.stop, log)
        with self.app.producer_or_acquire() as publisher:
            while not self.stop.is_set():
                try:
                    if not holds_released:
                        self.release_holds()
                        holds_released = True
                    wakeups.pending()  # what this fill sees needs no wake-up of its own
                    published = sum(self._fill(plan, publisher) for plan in self.plans)
                    backoff.reset()  # the broker and the store answered
                    if published:
                        continue
                    if self.refresh_every is None and self._drained():
                        break
                    elapsed = time.monotonic() - last_refresh
                    timeout = 0.5 if self.refresh_every is None else self._until_due(self.refresh_every - elapsed)
                    self._wait_for_room(max(timeout, _POLL_S), wakeups)
                    if self.refresh_every is not None and time.monotonic() - last_refresh >= self.refresh_every:
                        last_refresh = time.monotonic()
                except OUTAGES as e:
                    backoff.wait(e)
        return self.stats

    def _fill(self, plan: StagePlan, publisher: Any) -> int:
        """Publish batches for one stage, up to its in-flight limit and _FILL_TASKS tasks; return how many.

        While batches are in flight, it waits until a quarter of the limit is
        free: one claim then fills several batches at once, instead of one
        claim, one data-unit query and one ledger write per applied batch.
        """
        uuid_ = plan.stage.uuid
        in_flight = self.ledger.count(self.project.id, uuid_)
        room = self.max_in_flight - in_flight
        if room <= 0 or (in_flight and room < self._refill) or self.stop.is_set():
            return 0
        # A deep pipeline is filled a few thousand tasks at a time: the first batches go out
        # sooner, and the specs of one fill are all the producer holds in memory.
        want = min(room, max(1, _FILL_TASKS // self.batch_size)) * self.batch_size
        if self.max_tasks_per_stage is not None:
            want = min(want, self.max_tasks_per_stage - self.stats.tasks.get(uuid_, 0))
        if want <= 0:
            return 0
        started = time.perf_counter()
        cursor = self._cursors.setdefault(uuid_, ClaimCursor())
        claimed = claim_tasks(self.store, self.project.id, uuid_, want, self.lease_seconds, cursor=cursor)
        if not claimed:
            return 0
        specs = build_spec_json(self.store, self.project, plan.stage, claimed, include_labels=plan.include_labels)
        deadline = min(t.lease_deadline for t in claimed if t.lease_deadline is not None)
        chunks = [specs[start : start + self.batch_size] for start in range(0, len(specs), self.batch_size)]
        headers = [self._header(plan, len(chunk), deadline) for chunk in chunks]
        # Into the ledger first (all batches of this fill in one write): the
        # applier may finish a batch before its publish returns.
        self.ledger.add_many(self.project.id, uuid_, [h.batch_id for h in headers], deadline.timestamp())
        batches = list(zip(headers, chunks, strict=True))
        self.publisher.send(plan, batches, publisher)
        self.stats.batches[uuid_] = self.stats.batches.get(uuid_, 0) + len(batches)
        self.stats.tasks[uuid_] = self.stats.tasks.get(uuid_, 0) + len(specs)
        if self.observer is not None:
            self.observer.enumerated(self.project.name, plan.stage.title, len(specs), time.perf_counter() - started)
        return len(specs)

    def _header(self, plan: StagePlan, size: int, deadline: datetime) -> BatchHeader:
        return BatchHeader(
            batch_id=uuid.uuid4().hex,
            project_id=self.project.id,
            project_name=self.project.name,
            stage_uuid=plan.stage.uuid,
            stage_key=plan.stage_key,
            size=size,
            published_at=datetime.now(UTC),
            deadline=deadline,
        )

    # ---------------------------------------------------------------- waiting
    def _in_flight(self) -> int:
        return sum(self.ledger.count(self.project.id, p.stage.uuid) for p in self.plans)

    def _wait_for_room(self, timeout: float, wakeups: WorkSignal) -> None:
        """Sleep until a batch is applied (the ledger shrinks), a commit wakes it, ``timeout`` passes, or a stop."""
        start = self._in_flight()
        end = time.monotonic() + timeout
        while not self.stop.is_set() and time.monotonic() < end:
            if self.stop.wait(_POLL_S):
                return
            if wakeups.pending() or self._in_flight() < start:
                return

    def _until_due(self, timeout: float) -> float:
        """``timeout``, or less when nothing is in flight and a retry comes due sooner."""
        if self._in_flight():
            return timeout  # an applied batch wakes the producer before long anyway
        due = [d for p in self.plans if (d := next_retry_at(self.store, self.project.id, p.stage.uuid))]
        if not due:
            return timeout
        return min(timeout, (min(due) - now()).total_seconds())

    def _drained(self) -> bool:
        """Nothing claimable was found; is anything still on its way or waiting out a retry?"""
        if self._in_flight():
            return False
        live = count_live_leases(self.store, self.project.id)
        stages = [p.stage.uuid for p in self.plans]
        if any(live.get(s, 0) for s in stages):
            return False
        soon = now() + timedelta(days=1)
        return all((next_retry_at(self.store, self.project.id, s) or soon) >= soon for s in stages)
