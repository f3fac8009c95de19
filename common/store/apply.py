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

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert

from common.enums import Action, StageType, TaskStatus
from common.errors import AnnoflowError, ConflictError
from common.models import TaskCompletionResult
from common.store.bulk import EventGroup, UpdateGroup, insert_events, lock_tasks, update_tasks
from common.store.leases import FAILED, HOLD_PREFIX, RETRY_PREFIX
from common.store.lifecycle import MovePlan, now, plan_move
from common.store.records import LabelRow, TaskState
from common.store.schema import subtasks
from common.store.store import Store, save_label_row
from common.transitions import Rule, rule_for
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

    The tasks are read (and on PostgreSQL locked) in one query; the task
    updates and the events are then written with one statement per group of
    tasks that change alike (usually one for the whole message), label rows
    one by one (each checks its version).

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
        ConflictError: a task changed under the lock (not expected); nothing
            was written and the message may be applied again.
    """
    outcome = ApplyOutcome()
    if not results:
        return outcome
    with store.write() as conn:
        keys = [str(r.task_uuid) for r in results]
        current, versions = lock_tasks(conn, keys)
        flows: dict[str, Workflow] = {}
        writes = _Writes(conn, outcome, num_retries, backoff_s, hold_s)
        applied: set[str] = set()
        stage_texts: dict[uuid.UUID, str] = {}  # a message's results mostly share one stage
        for key, result in zip(keys, results, strict=True):
            task = current.get(key)
            # An accepted result always replaces the lease, so a second one for the
            # same task in this message no longer matches it: stale, as a redelivery would be.
            why = _DUPLICATE if key in applied else _stale_reason(task, result, stage_texts)
            if task is None or why:
                outcome._note(key, "stale", why)
                continue
            if task.project_id not in flows:
                flows[task.project_id] = store.workflow(task.project_id, versions[task.project_id])
            writes.apply(flows[task.project_id], task, result)
            applied.add(key)
        writes.flush()
    return outcome


_DUPLICATE = "a second result for this task in the same message (a duplicate)"


def _stale_reason(task: TaskState | None, result: TaskCompletionResult, texts: dict[uuid.UUID, str]) -> str:
    if task is None:
        return "no such task"
    if result.lease_token is None or result.lease_token != task.lease_token:
        return "the task no longer holds this lease (expired and claimed again, or a duplicate)"
    stage = result.stage_uuid
    if stage is not None:
        if stage not in texts:
            texts[stage] = str(stage)
        if texts[stage] != task.stage_uuid:
            return "the task is no longer in this stage"
    return ""


@dataclass(frozen=True)
class _Route:
    """A move worked out once: where tasks that move alike add themselves (update group, event group)."""

    updates: list[tuple[int, int]]
    events: list[str]
    dest: str
    note: str

    def add(self, outcome: ApplyOutcome, task: TaskState) -> None:
        outcome._note(task.uuid, "applied", self.note)
        outcome.moved[self.dest] = outcome.moved.get(self.dest, 0) + 1
        self.updates.append((task.id, task.version))
        self.events.append(task.uuid)


class _Writes:
    """Decides what each accepted result does and collects the writes for one flush."""

    def __init__(self, conn: Connection, outcome: ApplyOutcome, retries: int, backoff_s: float, hold_s: float):
        self.conn, self.outcome = conn, outcome
        self.retries, self.backoff_s, self.hold_s = retries, backoff_s, hold_s
        self.at = now()
        # Tasks that get the same values (or events) are written together: keyed by those values.
        self.updates: dict[tuple[Any, ...], UpdateGroup] = {}
        self.events: dict[tuple[Any, ...], EventGroup] = {}
        self.subtasks: dict[str, list[dict[str, Any]]] = {}
        # Moves already worked out, by what decides them: (project, stage, status, pathway, run, priority).
        self.routes: dict[tuple[Any, ...], _Route] = {}

    def apply(self, wf: Workflow, task: TaskState, result: TaskCompletionResult) -> None:
        # Most of a message moves alike: the first such task works the move out, the rest follow it.
        plain = result.success and result.labels is None and result.pathway is not None
        key = (task.project_id, task.stage_uuid, task.status, result.pathway, result.run_id, result.priority)
        route = self.routes.get(key) if plain else None
        if route is not None:
            route.add(self.outcome, task)
            return
        stage = wf.stages[task.stage_uuid]
        if not result.success:
            self._fail(wf, stage, task, result.error or "the handler failed")
            return
        try:
            pathway = stage.pathway(str(result.pathway)) if result.pathway is not None else None
            rule = rule_for(StageType.AGENT, Action.PROCEED, task.status, stage.title) if pathway else None
            if result.labels is not None:
                save_label_row(self.conn, self._label_row(task, result))
        except AnnoflowError as e:  # unknown pathway, labels saved meanwhile: a failed attempt
            self._fail(wf, stage, task, str(e))
            return
        extra: dict[str, Any] = {} if result.priority is None else {"priority": result.priority}
        if pathway is None or rule is None:
            self.outcome._note(task.uuid, "applied", "stayed")
            self._update(task, {**self._stay_lease(), "attempts": 0, "last_error": None, **extra})
            return
        route = self._move(wf, stage, task, pathway, rule, result.run_id, extra)
        if plain and route is not None:
            self.routes[key] = route

    @staticmethod
    def _label_row(task: TaskState, result: TaskCompletionResult) -> LabelRow:
        assert result.labels is not None
        return LabelRow(
            project_id=task.project_id,
            data_hash=task.data_hash,
            branch=task.label_branch,
            objects=result.labels.objects,
            version=result.labels.version,
        )

    def _fail(self, wf: Workflow, stage: Stage, task: TaskState, error: str) -> None:
        # attempts was counted when the task was claimed: attempt 1 is the first try.
        if task.attempts <= self.retries:
            self.outcome._note(task.uuid, "retried", error)
            wait = self.backoff_s * 2 ** max(task.attempts - 1, 0)
            self._update(
                task,
                {
                    # A new token: a duplicate of this failed result is stale, not a second failure.
                    "lease_token": f"{RETRY_PREFIX}{uuid.uuid4().hex}",
                    "lease_deadline": self.at + timedelta(seconds=wait),
                    "last_error": error,
                },
            )
            return
        self.outcome._note(task.uuid, "failed", error)
        if stage.on_failure is not None:
            pathway = next(p for p in stage.pathways if p.uuid == stage.on_failure)
            rule = rule_for(StageType.AGENT, Action.PROCEED, task.status, stage.title)
            self._move(wf, stage, task, pathway, rule, None, {"last_error": error, "attempts": task.attempts})
            return
        self._update(task, {"lease_token": FAILED, "lease_deadline": None, "last_error": error})

    def _move(
        self, wf: Workflow, stage: Stage, task: TaskState, pathway: Pathway, rule: Rule,
        run_id: str | None, extra: dict[str, Any],
    ) -> _Route | None:  # fmt: skip
        """Collect one task's move; return the route that tasks moved alike may follow (None if none may)."""
        plan: MovePlan = plan_move(wf, task, pathway, rule, Action.PROCEED, f"agent:{stage.title}", run_id, extra)
        event = {"project_id": task.project_id, "at": self.at, **plan.event}
        detail = event.pop("detail", None)
        key = (*event.items(), None if detail is None else json.dumps(detail, sort_keys=True))
        event["detail"] = detail
        events = self.events.setdefault(key, (event, []))[1]
        if plan.subtask_rows:
            self.subtasks[task.uuid] = plan.subtask_rows
        route = _Route(self._group(plan.values), events, plan.values["stage_uuid"], f"moved along '{pathway.name}'")
        route.add(self.outcome, task)
        return None if plan.per_task else route

    def _stay_lease(self) -> dict[str, Any]:
        if self.hold_s > 0:
            return {
                "lease_token": f"{HOLD_PREFIX}{uuid.uuid4().hex}",
                "lease_deadline": self.at + timedelta(seconds=self.hold_s),
            }
        return {"lease_token": None, "lease_deadline": None}

    def _update(self, task: TaskState, changes: dict[str, Any]) -> None:
        self._group(changes).append((task.id, task.version))

    def _group(self, changes: dict[str, Any]) -> list[tuple[int, int]]:
        """The tasks that get exactly ``changes`` (a list to add (id, version) to)."""
        if isinstance(changes.get("status"), TaskStatus):
            changes = {**changes, "status": changes["status"].value}
        # Task column values are text, numbers, timestamps or None: hashable, so they key the group.
        return self.updates.setdefault(tuple(changes.items()), (changes, []))[1]

    def flush(self) -> None:
        """Write the collected task updates, subtasks and events, a statement per group that changes alike."""
        expected = sum(len(members) for _, members in self.updates.values())
        if expected and update_tasks(self.conn, list(self.updates.values()), self.at) != expected:
            # Cannot happen while the rows are locked; fail the message rather than guess.
            raise ConflictError("a task changed while its result was applied; apply the message again")
        if self.subtasks:
            # A fresh round of consensus; the previous round's options are replaced.
            self.conn.execute(delete(subtasks).where(subtasks.c.task_uuid.in_(list(self.subtasks))))
            self.conn.execute(insert(subtasks), [r for rows in self.subtasks.values() for r in rows])
        if self.events:
            insert_events(self.conn, list(self.events.values()))
