"""A ToTask run's result applier: read the run's results queue, write labels, count, record failures.

Successes go through the store's result applier (lease checked, label row saved
against the version the worker merged into, lease cleared, the task stays in its
stage). The rows written are marked in the run's label backup so a rollback restores
exactly them. A failed task is released at once and its reason kept and logged in
the form ``[Task <id>] Failed: <reason>``. A batch delivered twice counts once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from kombu.message import Message

from common.models import TaskCompletionResult
from common.store import Store
from common.store.apply import apply_results
from common.store.totask_fast import apply_labels_fast
from common.store.totask_runs import TaskFailure, mark_applied, record_failures
from common.totask.queues import TotaskResults

__all__ = ["InFlight", "RunApplier", "RunCounts"]

log = logging.getLogger("annoflow.totask")


@dataclass(frozen=True)
class InFlight:
    """A published batch waiting for its results: each task's data hash and title."""

    tasks: dict[str, tuple[str, str]]  # task uuid -> (data hash, data title)
    published: float  # time.monotonic() when published


@dataclass
class RunCounts:
    """What the run's applier has seen so far."""

    success: int = 0
    failed: int = 0
    duplicates: int = 0
    last_result: float = field(default_factory=time.monotonic)


class RunApplier:
    """Applies one run's result messages; the run's loop feeds it from the results queue."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.in_flight: dict[str, InFlight] = {}
        self.counts = RunCounts()
        self.changed: list[str] = []  # uuids of the tasks whose label rows were written (the run's lineage)

    def expect(self, batch_id: str, batch: InFlight) -> None:
        """Remember a batch before it is published (its answer may come back at once)."""
        self.in_flight[batch_id] = batch

    def fail_unpublished(self, failures: list[TaskFailure]) -> None:
        """Record tasks that failed before reaching a worker (e.g. held by another worker)."""
        self._record(failures)

    def on_message(self, message: Message) -> None:
        """kombu callback: apply one results message, then acknowledge it.

        Raises:
            TransientError: the store is unreachable (the message is put back first).
            AnnoflowError: the results could not be applied; the run must stop.
        """
        try:
            batch = TotaskResults.model_validate_json(message.body)
        except ValueError as e:
            log.error("run %s: dropping a message that is not a ToTask results batch: %s", self.run_id, e)
            message.reject()
            return
        try:
            self.apply(batch)
        except Exception:
            message.requeue()
            raise
        message.ack()

    def apply(self, batch: TotaskResults) -> None:
        """Apply a results batch of this run (a duplicate or another run's batch is ignored)."""
        waiting = self.in_flight.get(batch.header.batch_id)
        if batch.header.run_id != self.run_id or waiting is None:
            self.counts.duplicates += 1
            return
        successes = [r for r in batch.results if r.success]
        failures = [
            self._failure(waiting, r, r.error or "the worker gave no reason") for r in batch.results if not r.success
        ]
        applied = []
        fast = apply_labels_fast(self.store, successes, self.run_id)  # backups marked applied with the rows
        if fast is not None:
            self.counts.success += len(fast)
            self.changed.extend(fast)
        else:  # something changed under the run: decide result by result
            outcome = apply_results(self.store, successes, num_retries=0, hold_s=0.0)
            by_uuid = {str(r.task_uuid): r for r in successes}
            for note in outcome.notes:
                if note.outcome == "applied":
                    applied.append(waiting.tasks[note.task_uuid][0])
                    self.changed.append(note.task_uuid)
                else:  # a label row saved meanwhile, or the task moved or released by a person
                    reason = f"labels not written: {note.detail}; run again for this task"
                    failures.append(self._failure(waiting, by_uuid[note.task_uuid], reason))
        answered = {str(r.task_uuid) for r in batch.results}
        for task_uuid, (_, title) in waiting.tasks.items():
            if task_uuid not in answered:
                failures.append(TaskFailure(task_uuid, title, "the worker returned no result for this task", None))
        if applied:
            mark_applied(self.store, self.run_id, applied)
        self._record(failures)
        self.counts.success += len(applied)
        del self.in_flight[batch.header.batch_id]
        self.counts.last_result = time.monotonic()

    def _failure(self, waiting: InFlight, result: TaskCompletionResult, error: str) -> TaskFailure:
        task_uuid = str(result.task_uuid)
        title = waiting.tasks.get(task_uuid, ("", ""))[1]
        return TaskFailure(task_uuid, title, error, result.lease_token)

    def _record(self, failures: list[TaskFailure]) -> None:
        if not failures:
            return
        record_failures(self.store, self.run_id, failures)
        for f in failures:
            log.warning("[Task %s] Failed: %s", f.task_uuid, f.error)
        self.counts.failed += len(failures)
