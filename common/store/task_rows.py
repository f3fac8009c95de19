"""One task's rows inside the caller's transaction: read it and its subtasks, update it, append its events.

A task is updated only at the version it was read at (:func:`write_task`), so
of two processes acting on the same task one wins and the other gets a
:class:`ConflictError` instead of overwriting what it never saw.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from common.errors import ConflictError, NotFoundError
from common.store.records import SubtaskRecord, TaskRecord, now
from common.store.schema import events, subtasks, tasks

__all__ = ["load_subtasks", "load_task", "record_event", "write_task"]


def load_task(conn: Connection, task_uuid: str, *, lock: bool = False) -> TaskRecord:
    """The task; ``lock``: on PostgreSQL, hold its row until the transaction ends (SQLite's writer already does).

    Raises:
        NotFoundError: no such task.
    """
    query = select(tasks).where(tasks.c.uuid == task_uuid)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise NotFoundError(f"no task {task_uuid}; list tasks with 'annoflow tasks list --project NAME'")
    return TaskRecord.model_validate(dict(row))


def load_subtasks(conn: Connection, task_uuid: str) -> list[SubtaskRecord]:
    """The task's consensus subtasks, by label branch (none outside consensus annotation)."""
    rows = conn.execute(
        select(subtasks).where(subtasks.c.task_uuid == task_uuid).order_by(subtasks.c.label_branch)
    ).mappings()
    return [SubtaskRecord.model_validate(dict(r)) for r in rows]


def record_event(conn: Connection, task: TaskRecord, **values: Any) -> None:
    """Append one event to the task's history."""
    conn.execute(insert(events).values(project_id=task.project_id, task_uuid=task.uuid, at=now(), **values))


def write_task(conn: Connection, task: TaskRecord, values: dict[str, Any]) -> None:
    """Update the task's columns if it is still at the version ``task`` was read at.

    Raises:
        ConflictError: another process changed the task meanwhile.
    """
    values = {**values, "updated_at": now(), "version": task.version + 1}
    done = conn.execute(
        update(tasks).where(tasks.c.uuid == task.uuid, tasks.c.version == task.version).values(**values)
    )
    if done.rowcount != 1:
        raise ConflictError(
            f"task {task.uuid} was changed by another process while this action ran; "
            "read it again and retry if the action still applies"
        )
