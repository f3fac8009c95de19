"""Apply ``TaskCompletionResult``s to the store: exactly-once effect over at-least-once delivery.

One call is one transaction (one results message). Each result must match the
lease its task holds and the stage the task is in; otherwise it is stale (the
lease expired and the task was claimed again, a person moved the task, or the
message was delivered twice) and is dropped without changing anything.

What an accepted result does:

* success with a pathway: labels written, priority set, the task moves along
  the pathway (through routers) with one ``proceed`` event by
  ``agent:<stage title>``; its lease, attempts and error are cleared.
* success without a pathway (the handler said "stay"): labels and priority
  written, the lease cleared (or turned into a hold of ``hold_s`` seconds) so
  the task is taken again on the next refresh, as the sequential runner does.
  No event: the task did not move.
* failure: ``last_error`` is recorded. While ``attempts <= num_retries`` the
  task waits ``backoff_s * 2**(attempts-1)`` seconds and is claimed again;
  after that it follows the stage's ``on_failure`` pathway if the workflow
  has one, else it is marked failed (``annoflow tasks failed``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from common.enums import Action, StageType
from common.errors import AnnoflowError, ConflictError
from common.models import TaskCompletionResult
from common.store.leases import FAILED, HOLD_PREFIX, RETRY_PREFIX
from common.store.lifecycle import move, now
from common.store.records import LabelRow, TaskRecord
from common.store.schema import tasks
from common.store.store import Store, save_label_row
from common.transitions import rule_for
from common.workflow import Pathway, Stage, Workflow

__all__ = ["ApplyNote", "ApplyOutcome", "apply_results"]

Outcome = Literal["applied", "stale", "retried", "failed"]


@dataclass(frozen=True)
class ApplyNote:
    """What happened to one result."""

    task_uuid: str
    outcome: Outcome
    detail: str = ""


@dataclass
class ApplyOutcome:
    """Counts for one call of :func:`apply_results`, and a note per result."""

    applied: int = 0  # successes written (moved or stayed)
    stale: int = 0  # dropped: lease or stage no longer match, or unknown task
    retried: int = 0  # failures that will be claimed again after a backoff
    failed: int = 0  # failures with retries used up (marked failed or sent on_failure)
    moved: dict[str, int] = field(default_factory=dict)  # arrivals by destination stage uuid
    notes: list[ApplyNote] = field(default_factory=list)

    def _note(self, task_uuid: str, outcome: Outcome, detail: str = "") -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.notes.append(ApplyNote(task_uuid, outcome, detail))


def apply_results(
    store: Store,
    results: list[TaskCompletionResult],
    *,
    num_retries: int,
    backoff_s: float = 1.0,
    hold_s: float = 0.0,
) -> ApplyOutcome:
    """Apply a message's results in one transaction; see the module docstring.

    Args:
        store: the store.
        results: the results of one message (any mix of tasks and stages).
        num_retries: how many times a failed task is tried again before it is failed.
        backoff_s: the first retry waits this long; each further one twice as long.
        hold_s: a task that stays in its stage is not claimed again for this long
            (the producer passes its refresh interval); 0 frees it at once.

    Raises:
        TransientError: the store could not be reached; the whole message is
            untouched and may be applied again.
    """
    outcome = ApplyOutcome()
    if not results:
        return outcome
    with store.write() as conn:
        current = _lock_tasks(conn, store, [str(r.task_uuid) for r in results])
        for result in results:
            key = str(result.task_uuid)
            task = current.get(key)
            why = _stale_reason(task, result)
            if task is None or why:
                outcome._note(key, "stale", why)
                continue
            wf = store.workflow(task.project_id)
            stage = wf.stages[task.stage_uuid]
            current[key] = _apply_one(conn, wf, stage, task, result, outcome, num_retries, backoff_s, hold_s)
    return outcome


def _lock_tasks(conn: Connection, store: Store, uuids: list[str]) -> dict[str, TaskRecord]:
    query = select(tasks).where(tasks.c.uuid.in_(sorted(set(uuids))))
    if not store.is_sqlite:
        # Locked in uuid order so two appliers never deadlock; SQLite's write
        # transaction already excludes every other writer.
        query = query.order_by(tasks.c.uuid).with_for_update()
    return {r["uuid"]: TaskRecord.model_validate(dict(r)) for r in conn.execute(query).mappings()}


def _stale_reason(task: TaskRecord | None, result: TaskCompletionResult) -> str:
    if task is None:
        return "no such task"
    if result.lease_token is None or result.lease_token != task.lease_token:
        return "the task no longer holds this lease (expired and claimed again, or a duplicate)"
    if result.stage_uuid is not None and str(result.stage_uuid) != task.stage_uuid:
        return "the task is no longer in this stage"
    return ""


def _apply_one(
    conn: Connection,
    wf: Workflow,
    stage: Stage,
    task: TaskRecord,
    result: TaskCompletionResult,
    outcome: ApplyOutcome,
    num_retries: int,
    backoff_s: float,
    hold_s: float,
) -> TaskRecord:
    if not result.success:
        return _fail(conn, wf, stage, task, result.error or "the handler failed", outcome, num_retries, backoff_s)
    try:
        pathway = stage.pathway(str(result.pathway)) if result.pathway is not None else None
        rule = rule_for(StageType.AGENT, Action.PROCEED, task.status, stage.title) if pathway else None
        if result.labels is not None:
            row = LabelRow(
                project_id=task.project_id,
                data_hash=task.data_hash,
                branch=task.label_branch,
                objects=result.labels.objects,
                version=result.labels.version,
            )
            save_label_row(conn, row)
    except AnnoflowError as e:  # unknown pathway, labels saved meanwhile: a failed attempt
        return _fail(conn, wf, stage, task, str(e), outcome, num_retries, backoff_s)
    extra: dict[str, Any] = {} if result.priority is None else {"priority": result.priority}
    if pathway is None or rule is None:
        outcome._note(task.uuid, "applied", "stayed")
        return _write(conn, task, {**_stay_lease(hold_s), "attempts": 0, "last_error": None, **extra})
    moved = move(conn, wf, task, pathway, rule, Action.PROCEED, f"agent:{stage.title}", result.run_id, extra)
    outcome.moved[moved.stage_uuid] = outcome.moved.get(moved.stage_uuid, 0) + 1
    outcome._note(task.uuid, "applied", f"moved to {wf.stages[moved.stage_uuid].title}")
    return moved


def _fail(
    conn: Connection,
    wf: Workflow,
    stage: Stage,
    task: TaskRecord,
    error: str,
    outcome: ApplyOutcome,
    num_retries: int,
    backoff_s: float,
) -> TaskRecord:
    # attempts was counted when the task was claimed: attempt 1 is the first try.
    if task.attempts <= num_retries:
        wait = backoff_s * 2 ** max(task.attempts - 1, 0)
        outcome._note(task.uuid, "retried", error)
        return _write(
            conn,
            task,
            {
                # A new token: a duplicate of this failed result is stale, not a second failure.
                "lease_token": f"{RETRY_PREFIX}{uuid.uuid4().hex}",
                "lease_deadline": now() + timedelta(seconds=wait),
                "last_error": error,
            },
        )
    outcome._note(task.uuid, "failed", error)
    if stage.on_failure is not None:
        pathway = next(p for p in stage.pathways if p.uuid == stage.on_failure)
        moved = _move(conn, wf, stage, task, pathway, None, {"last_error": error, "attempts": task.attempts})
        outcome.moved[moved.stage_uuid] = outcome.moved.get(moved.stage_uuid, 0) + 1
        return moved
    return _write(conn, task, {"lease_token": FAILED, "lease_deadline": None, "last_error": error})


def _move(
    conn: Connection,
    wf: Workflow,
    stage: Stage,
    task: TaskRecord,
    pathway: Pathway,
    run_id: str | None,
    extra: dict[str, Any],
) -> TaskRecord:
    # Agent stages move by the transition table's proceed rule; other stage
    # kinds (a ToTask run's stage) use the same rule's shape for arrival status.
    rule = rule_for(StageType.AGENT, Action.PROCEED, task.status, stage.title)
    return move(conn, wf, task, pathway, rule, Action.PROCEED, f"agent:{stage.title}", run_id, extra)


def _stay_lease(hold_s: float) -> dict[str, Any]:
    if hold_s > 0:
        return {"lease_token": f"{HOLD_PREFIX}{uuid.uuid4().hex}", "lease_deadline": now() + timedelta(seconds=hold_s)}
    return {"lease_token": None, "lease_deadline": None}


def _write(conn: Connection, task: TaskRecord, values: dict[str, Any]) -> TaskRecord:
    values = {**values, "updated_at": now(), "version": task.version + 1}
    done = conn.execute(
        update(tasks).where(tasks.c.uuid == task.uuid, tasks.c.version == task.version).values(**values)
    )
    if done.rowcount != 1:
        # Cannot happen while the row is locked; fail the message rather than guess.
        raise ConflictError(f"task {task.uuid} changed while its result was applied; apply the message again")
    return task.model_copy(update=values)
