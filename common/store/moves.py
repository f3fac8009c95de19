"""Move a task to another stage: through routers, with a fresh consensus round where it arrives.

:func:`plan_move` works out what a move writes without writing anything;
:func:`move` writes that plan for one task inside the caller's transaction, and
the result applier (:mod:`common.store.apply`) writes many plans at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert

from common.enums import Action, StageType, TaskStatus
from common.store.records import TaskRecord, TaskState, now
from common.store.schema import subtasks
from common.store.task_rows import load_task, record_event, write_task
from common.transitions import Rule, arrival_status
from common.workflow_graph import Pathway, Stage, Workflow

__all__ = ["MovePlan", "enter_stage_rows", "move", "plan_move"]


def enter_stage_rows(stage: Stage, task_uuid: str, status: TaskStatus) -> list[dict[str, Any]]:
    """Subtask rows a task needs when it enters ``stage`` (consensus annotation only)."""
    if stage.type is not StageType.CONSENSUS_ANNOTATION or not stage.annotators:
        return []
    at = now()
    return [
        {
            "uuid": str(uuid.uuid4()),
            "task_uuid": task_uuid,
            "label_branch": f"consensus-{i + 1}",
            "assignee": None,
            "status": status.value,
            "updated_at": at,
        }
        for i in range(stage.annotators)
    ]


@dataclass(frozen=True)
class MovePlan:
    """What moving one task writes: its new column values, subtask rows and its one event."""

    values: dict[str, Any]  # task columns, without updated_at and version
    subtask_rows: list[dict[str, Any]]  # a fresh consensus round, or empty
    event: dict[str, Any]  # the event's columns, without project_id, task_uuid and at
    # Whether another task moved alike (same stage, status and pathway) could get a different
    # plan: a percentage router on the way (it splits by data unit) or a consensus round (fresh rows).
    per_task: bool = False


def plan_move(
    wf: Workflow,
    task: TaskRecord | TaskState,
    pathway: Pathway | None,
    rule: Rule,
    action: Action,
    actor: str | None,
    run_id: str | None,
    extra: dict[str, Any] | None = None,
) -> MovePlan:
    """Work out a move along ``pathway`` (the start stage when None), through routers, without writing.

    :func:`move` executes it for one task; the result applier executes many at once.
    """
    target = pathway.to if pathway is not None else wf.start_uuid
    dest, routed = wf.resolve(target, task.data_hash, actor)
    status = arrival_status(dest.type, rule)
    values: dict[str, Any] = {
        "stage_uuid": dest.uuid,
        "status": status.value,
        "assignee": None,
        "last_actioned_by": actor or None,
        "lease_token": None,
        "lease_deadline": None,
        "attempts": 0,
        "last_error": None,
        **(extra or {}),
    }
    event = {
        "actor": actor or None,
        "action": action.value,
        "from_stage": task.stage_uuid,
        "to_stage": dest.uuid,
        "from_status": task.status.value,
        "to_status": status.value,
        "pathway": pathway.uuid if pathway else None,
        "run_id": run_id,
        "detail": {"routers": [p.uuid for p in routed]} if routed else None,
    }
    rows = enter_stage_rows(dest, task.uuid, status)
    split = any(wf.stages[p.source].type is StageType.PERCENTAGE_ROUTER for p in routed)
    return MovePlan(values, rows, event, per_task=split or bool(rows))


def move(
    conn: Connection,
    wf: Workflow,
    task: TaskRecord,
    pathway: Pathway | None,
    rule: Rule,
    action: Action,
    actor: str | None,
    run_id: str | None,
    extra: dict[str, Any] | None = None,
) -> TaskRecord:
    """Move ``task`` along ``pathway`` (or to the start stage when it is None), through routers."""
    plan = plan_move(wf, task, pathway, rule, action, actor, run_id, extra)
    write_task(conn, task, plan.values)
    if plan.subtask_rows:
        # A fresh round of consensus; the previous round's options are replaced.
        conn.execute(delete(subtasks).where(subtasks.c.task_uuid == task.uuid))
        conn.execute(insert(subtasks), plan.subtask_rows)
    record_event(conn, task, **plan.event)
    return load_task(conn, task.uuid)
