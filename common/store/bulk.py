"""Write many task updates and events in one statement each (the result applier's hot path).

Every update row carries the task's id and the version it was read at (``w_id``,
``w_version``) and a value for each of :data:`TASK_COLUMNS` (``v_<column>``).

* PostgreSQL: the rows travel as arrays through ``unnest``; the statement text
  is the same for any number of rows, so it is prepared once and one round
  trip writes the whole message.
* SQLite: the driver's own ``execute``/``executemany`` on the transaction's
  connection, with values converted column by column by the column types' bind
  processors (so the stored values are the ones ``update(tasks)`` would write).
  SQLAlchemy's per-row parameter processing costs several times more than
  SQLite's update itself, and its result object for each statement about as
  much as a one-task message's whole update.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Connection, DateTime, select, text

from common.store.records import TaskRecord
from common.store.schema import events, projects, tasks

__all__ = ["TASK_COLUMNS", "driver_value", "insert_events", "lock_tasks", "update_tasks"]

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
# SQLite: the SET columns in TASK_COLUMNS order, then the WHERE values (id, version).
_SQLITE_UPDATE = f"UPDATE {tasks.name} SET {', '.join(f'{c} = ?' for c in TASK_COLUMNS)} WHERE id = ? AND version = ?"
_SQLITE_EVENTS = f"INSERT INTO {events.name} ({', '.join(_EVENT_TYPES)}) VALUES ({', '.join('?' * len(_EVENT_TYPES))})"


def _converter(conn: Connection, column: Column[Any]) -> Callable[[list[Any]], list[Any]]:
    """Convert one column's values for the driver the way SQLAlchemy would (a no-op when it would not)."""
    key = (conn.dialect.name, column.table.name, column.name)
    if key not in _CONVERTERS:
        _CONVERTERS[key] = _make_converter(conn, column)
    return _CONVERTERS[key]


_CONVERTERS: dict[tuple[str, str, str], Callable[[list[Any]], list[Any]]] = {}


def _make_converter(conn: Connection, column: Column[Any]) -> Callable[[list[Any]], list[Any]]:
    proc = column.type._cached_bind_processor(conn.dialect)
    if proc is None:
        return lambda values: values
    if isinstance(column.type, DateTime):
        # A message's timestamps are a handful of distinct values: convert each once.
        def dates(values: list[Any]) -> list[Any]:
            memo: dict[Any, Any] = {}
            return [memo[v] if v in memo else memo.setdefault(v, proc(v)) for v in values]

        return dates
    # JSON columns store None as 'null' text: most event details are None, encode it once.
    none = proc(None)
    return lambda values: [none if v is None else proc(v) for v in values]


def _columns(
    conn: Connection, table_columns: list[Column[Any]], rows: list[dict[str, Any]], keys: list[str]
) -> list[tuple[Any, ...]]:
    """The rows as driver tuples in ``keys`` order, each column converted by its type."""
    converted = [
        _converter(conn, column)([row.get(key) for row in rows])
        for column, key in zip(table_columns, keys, strict=True)
    ]
    return list(zip(*converted, strict=True))


def driver_value(conn: Connection, column: Column[Any], value: Any) -> Any:
    """One value as SQLAlchemy would hand it to the driver for ``column``."""
    return _converter(conn, column)([value])[0]


def _driver(conn: Connection) -> Any:
    """The DB-API connection under ``conn``, inside ``conn``'s transaction."""
    return conn.connection.driver_connection


def lock_tasks(conn: Connection, uuids: list[str]) -> tuple[dict[str, TaskRecord], dict[str, int]]:
    """Read (on PostgreSQL: lock) the tasks by uuid, with their projects' current workflow versions.

    One query. SQLite reads through the driver: its write transaction already
    excludes every other writer, and pydantic parses the stored timestamps
    into the same values SQLAlchemy would, for less than half the cost.

    Returns:
        The tasks found, by uuid, and the workflow version of each of their projects.
    """
    wanted = sorted(set(uuids))
    if conn.dialect.name == "sqlite":
        rows: Any = _driver(conn).execute(_sqlite_lock(len(wanted)), tuple(wanted))
    else:
        # Locked in uuid order so two appliers never deadlock.
        rows = conn.execute(
            select(*tasks.c, projects.c.workflow_version)
            .join(projects, projects.c.id == tasks.c.project_id)
            .where(tasks.c.uuid.in_(wanted))
            .order_by(tasks.c.uuid)
            .with_for_update(of=tasks)
        )
    found: dict[str, TaskRecord] = {}
    versions: dict[str, int] = {}
    for row in rows:
        values = dict(zip(_TASK_KEYS, row, strict=False))
        versions[values["project_id"]] = row[-1]
        found[values["uuid"]] = TaskRecord.model_validate(values)
    return found, versions


_TASK_KEYS = list(tasks.c.keys())


def _sqlite_lock(n: int) -> str:
    return (
        f"SELECT {', '.join(f'{tasks.name}.{k}' for k in _TASK_KEYS)}, {projects.name}.workflow_version "
        f"FROM {tasks.name} JOIN {projects.name} ON {projects.name}.id = {tasks.name}.project_id "
        f"WHERE {tasks.name}.uuid IN ({', '.join('?' * n)})"
    )


def update_tasks(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Update every row's task if it still has the version it was read at; return how many were."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        done = conn.execute(_PG_UPDATE, {n: [row[n] for row in rows] for n in _NAMES})
        return int(done.rowcount)
    columns = [tasks.c[c] for c in TASK_COLUMNS] + [tasks.c.id, tasks.c.version]
    params = _columns(conn, columns, rows, [f"v_{c}" for c in TASK_COLUMNS] + ["w_id", "w_version"])
    return int(_driver(conn).executemany(_SQLITE_UPDATE, params).rowcount)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append event rows (each with project_id, task_uuid, at and the event's columns)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        params = {c: [row.get(c) for row in rows] for c in _EVENT_TYPES}
        params["detail"] = [None if d is None else json.dumps(d) for d in params["detail"]]
        conn.execute(_PG_EVENTS, params)
        return
    keys = list(_EVENT_TYPES)
    _driver(conn).executemany(_SQLITE_EVENTS, _columns(conn, [events.c[k] for k in keys], rows, keys))
