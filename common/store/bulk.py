"""Write many task updates and events in one statement each (the result applier's hot path).

Every update row carries the task's id and the version it was read at (``w_id``,
``w_version``) and a value for each of :data:`TASK_COLUMNS` (``v_<column>``).
On PostgreSQL the rows travel as arrays through ``unnest``: the statement text
is the same for any number of rows, so it is prepared once and one round trip
writes the whole message. SQLite runs in process, so executemany is as cheap.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, bindparam, insert, text, update

from common.store.schema import events, tasks

__all__ = ["TASK_COLUMNS", "insert_events", "update_tasks"]

# The task columns a result may change; every update row sets all of them.
TASK_COLUMNS = (
    "stage_uuid", "status", "assignee", "last_actioned_by", "lease_token", "lease_deadline",
    "attempts", "last_error", "priority", "updated_at", "version",
)  # fmt: skip
_PG_TYPES = {
    "stage_uuid": "varchar", "status": "varchar", "assignee": "varchar", "last_actioned_by": "varchar",
    "lease_token": "varchar", "lease_deadline": "timestamptz", "attempts": "integer", "last_error": "text",
    "priority": "float8", "updated_at": "timestamptz", "version": "integer",
}  # fmt: skip
_NAMES = ["w_id", "w_version", *(f"v_{c}" for c in TASK_COLUMNS)]
_ARRAYS = ", ".join(
    f"CAST(:{n} AS {t}[])" for n, t in zip(_NAMES, ["integer", "integer", *_PG_TYPES.values()], strict=True)
)
_PG_UPDATE = text(
    f"UPDATE tasks SET {', '.join(f'{c} = r.v_{c}' for c in TASK_COLUMNS)} "
    f"FROM unnest({_ARRAYS}) AS r({', '.join(_NAMES)}) "
    "WHERE tasks.id = r.w_id AND tasks.version = r.w_version"
)
_UPDATE = (
    update(tasks)
    .where(tasks.c.id == bindparam("w_id"), tasks.c.version == bindparam("w_version"))
    .values({c: bindparam(f"v_{c}") for c in TASK_COLUMNS})
)
_EVENT_TYPES = {
    "project_id": "varchar", "task_uuid": "varchar", "actor": "varchar", "action": "varchar",
    "from_stage": "varchar", "to_stage": "varchar", "from_status": "varchar", "to_status": "varchar",
    "pathway": "varchar", "run_id": "varchar", "at": "timestamptz", "detail": "json",
}  # fmt: skip
_PG_EVENTS = text(
    f"INSERT INTO events ({', '.join(_EVENT_TYPES)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _EVENT_TYPES.items())
    + ")"
)


def update_tasks(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Update every row's task if it still has the version it was read at; return how many were."""
    if conn.dialect.name == "postgresql":
        done = conn.execute(_PG_UPDATE, {n: [row[n] for row in rows] for n in _NAMES})
    else:
        done = conn.execute(_UPDATE, rows)
    return int(done.rowcount)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append event rows (each with project_id, task_uuid, at and the event's columns)."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(events), rows)
        return
    params = {c: [row.get(c) for row in rows] for c in _EVENT_TYPES}
    params["detail"] = [None if d is None else json.dumps(d) for d in params["detail"]]
    conn.execute(_PG_EVENTS, params)
