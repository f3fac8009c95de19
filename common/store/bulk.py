"""Write many task updates and events with few statements (the result applier's hot path).

The results of one message mostly do the same thing to every task: the ones
moved along a pathway all get the same stage, status and cleared lease, only
the task differs. So the writes come in groups: the column values a group sets,
and the tasks (id and the version each was read at, or the uuid for events)
that get them. A group's values are converted for the driver once, whatever
its size; the task columns ``updated_at`` and ``version`` (``version + 1``)
are set on every update.

* PostgreSQL: the driver's own connection too, one statement per group; the
  tasks travel as one comma-joined text each (``string_to_array``, then
  ``unnest``), so the statement text depends only on the columns set (psycopg
  prepares it after a few runs) and the driver dumps one string instead of
  quoting each element of a list (1.5 us per uuid).
* SQLite (3.33 or later, for ``UPDATE ... FROM``): the driver's own
  connection, inside the transaction, one statement per group (and per 4,096
  tasks); the tasks come as a ``VALUES`` list, so the shared values are bound
  once, not once per task (a third less CPU per row than ``executemany``).
  The values are converted by the column types' bind processors, so the
  stored values are the ones ``update(tasks)`` would write; SQLAlchemy's
  per-row parameter processing costs several times more than SQLite's update.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection

from common.enums import TaskStatus
from common.store.records import TaskState
from common.store.schema import events, projects, tasks

__all__ = [
    "TASK_COLUMNS",
    "EventGroup",
    "UpdateGroup",
    "driver_value",
    "insert_events",
    "joined",
    "lock_tasks",
    "update_tasks",
]

# The task columns a result may change (besides updated_at and version, which every update sets).
TASK_COLUMNS = (
    "stage_uuid", "status", "assignee", "last_actioned_by", "lease_token", "lease_deadline",
    "attempts", "last_error", "priority",
)  # fmt: skip
_PG_TYPES = {
    "stage_uuid": "varchar", "status": "varchar", "assignee": "varchar", "last_actioned_by": "varchar",
    "lease_token": "varchar", "lease_deadline": "timestamptz", "attempts": "integer", "last_error": "text",
    "priority": "float8",
}  # fmt: skip
_EVENT_TYPES = {
    "project_id": "varchar", "actor": "varchar", "action": "varchar",
    "from_stage": "varchar", "to_stage": "varchar", "from_status": "varchar", "to_status": "varchar",
    "pathway": "varchar", "run_id": "varchar", "at": "timestamptz", "detail": "json",
}  # fmt: skip

# The values a group of updates sets, and the (task id, version read) of each task it applies to.
UpdateGroup = tuple[dict[str, Any], list[tuple[int, int]]]
# The columns a group of events shares (all of :data:`_EVENT_TYPES`), and the uuid of each task it is about.
EventGroup = tuple[dict[str, Any], list[str]]


def driver_value(conn: Connection, column: Column[Any], value: Any) -> Any:
    """One value as SQLAlchemy would hand it to the driver for ``column``."""
    key = (conn.dialect.name, column.table.name, column.name)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = column.type._cached_bind_processor(conn.dialect)
    proc = _PROCESSORS[key]
    return value if proc is None else proc(value)


_PROCESSORS: dict[tuple[str, str, str], Callable[[Any], Any] | None] = {}
# Tasks per SQLite statement: two parameters each, well below SQLite's limit of 32,766.
_SQLITE_ROWS = 4096


def joined(values: Sequence[str]) -> str | None:
    """The values as one text for PostgreSQL's ``string_to_array(text, ',')``; None if one holds a comma.

    One string is one parameter for the driver to send, where a list of thousands costs
    psycopg a quoting check per element (1.5 us per uuid, more than the server's work on it).
    """
    return None if any("," in v for v in values) else ",".join(values)


def _ints(values: Sequence[int]) -> str:
    return ",".join(map(str, values))


def _driver(conn: Connection) -> Any:
    """The DB-API connection under ``conn``, inside ``conn``'s transaction."""
    return conn.connection.driver_connection


def lock_tasks(conn: Connection, uuids: list[str]) -> tuple[dict[str, TaskState], dict[str, int]]:
    """Read (on PostgreSQL: lock) the tasks by uuid, with their projects' current workflow versions.

    One query, of the ten columns a result is applied against (:class:`TaskState`),
    through the driver: SQLAlchemy's row processing and a full record's other
    columns (three timestamps, the title) would cost more than the read itself.
    SQLite's write transaction already excludes every other writer.

    Returns:
        The tasks found, by uuid, and the workflow version of each of their projects.
    """
    wanted = sorted(set(uuids))
    if conn.dialect.name == "sqlite":
        rows: Any = _driver(conn).execute(_sqlite_lock(len(wanted)), tuple(wanted))
    else:
        # Locked in uuid order so two appliers never deadlock. The uuids as one text: a statement
        # that does not change with the group's size (psycopg prepares it), one parameter to send.
        text = joined(wanted)
        if text is None:  # not uuids (a caller's bug); such a task cannot exist
            wanted = [u for u in wanted if "," not in u]
            text = ",".join(wanted)
        rows = _driver(conn).execute(_PG_LOCK, (text,))
    found: dict[str, TaskState] = {}
    versions: dict[str, int] = {}
    status = TaskStatus
    for id_, uuid_, project_id, data_hash, stage_uuid, st, branch, token, attempts, version, wf_version in rows:
        versions[project_id] = wf_version
        found[uuid_] = TaskState(
            id_, uuid_, project_id, data_hash, stage_uuid, status(st), branch, token, attempts, version
        )
    return found, versions


_STATE_KEYS = [f.name for f in fields(TaskState)]
_LOCK_COLUMNS = (
    f"{', '.join(f'{tasks.name}.{k}' for k in _STATE_KEYS)}, {projects.name}.workflow_version "
    f"FROM {tasks.name} JOIN {projects.name} ON {projects.name}.id = {tasks.name}.project_id "
)
_PG_LOCK = (
    f"SELECT {_LOCK_COLUMNS}"
    f"WHERE {tasks.name}.uuid = ANY(string_to_array(%s, ',')) ORDER BY {tasks.name}.uuid FOR UPDATE OF {tasks.name}"
)


def _sqlite_lock(n: int) -> str:
    return f"SELECT {_LOCK_COLUMNS}WHERE {tasks.name}.uuid IN ({', '.join('?' * n)})"


def update_tasks(conn: Connection, groups: Sequence[UpdateGroup], at: datetime) -> int:
    """Set each group's values (and ``updated_at = at``) on its tasks that still have the version read.

    Returns:
        How many tasks were updated: fewer than the groups name when one changed meanwhile.

    Raises:
        ValueError: a group sets a column outside :data:`TASK_COLUMNS` (a bug in the caller).
    """
    done = 0
    for values, members in groups:
        if not members:
            continue
        unknown = set(values) - set(TASK_COLUMNS)
        if unknown:
            raise ValueError(f"not task columns a result may change: {sorted(unknown)}")
        names = list(values)
        if conn.dialect.name == "postgresql":
            sets = "".join(f"{c} = CAST(%s AS {_PG_TYPES[c]}), " for c in names)
            ids, versions = _ints([i for i, _ in members]), _ints([v for _, v in members])
            result = _driver(conn).execute(
                f"UPDATE {tasks.name} SET {sets}updated_at = %s, version = {tasks.name}.version + 1 "
                "FROM unnest(CAST(string_to_array(%s, ',') AS integer[]), "
                "CAST(string_to_array(%s, ',') AS integer[])) AS r(id, version) "
                f"WHERE {tasks.name}.id = r.id AND {tasks.name}.version = r.version",
                [*(values[c] for c in names), at, ids, versions],
            )
            done += int(result.rowcount)
            continue
        shared = [driver_value(conn, tasks.c[c], values[c]) for c in names]
        shared.append(driver_value(conn, tasks.c.updated_at, at))
        sets = "".join(f"{c} = ?, " for c in names)
        for start in range(0, len(members), _SQLITE_ROWS):
            chunk = members[start : start + _SQLITE_ROWS]
            # The tasks as a VALUES list joined in: the shared values are bound once, not once per task.
            sql = (
                f"UPDATE {tasks.name} SET {sets}updated_at = ?, version = {tasks.name}.version + 1 "
                f"FROM (VALUES {', '.join(['(?, ?)'] * len(chunk))}) AS r "
                f"WHERE {tasks.name}.id = r.column1 AND {tasks.name}.version = r.column2"
            )
            done += int(_driver(conn).execute(sql, [*shared, *(x for member in chunk for x in member)]).rowcount)
    return done


def insert_events(conn: Connection, groups: Sequence[EventGroup]) -> None:
    """Append one event per task of each group, with the group's columns."""
    for values, uuids in groups:
        if not uuids:
            continue
        names = list(_EVENT_TYPES)
        if conn.dialect.name == "postgresql":
            params: dict[str, Any] = {c: values.get(c) for c in names}
            params["detail"] = None if params["detail"] is None else json.dumps(params["detail"])
            text = joined(uuids)
            if text is None:  # never with task uuids; kept correct all the same
                params["uuids"], unnest = list(uuids), "CAST(%(uuids)s AS varchar[])"
            else:
                params["uuids"], unnest = text, "string_to_array(%(uuids)s, ',')"
            _driver(conn).execute(
                f"INSERT INTO {events.name} (task_uuid, {', '.join(names)}) "
                f"SELECT u, {', '.join(f'CAST(%({c})s AS {t})' for c, t in _EVENT_TYPES.items())} "
                f"FROM unnest({unnest}) AS u",
                params,
            )
            continue
        shared = [driver_value(conn, events.c[c], values.get(c)) for c in names]
        for start in range(0, len(uuids), _SQLITE_ROWS):
            chunk = uuids[start : start + _SQLITE_ROWS]
            _driver(conn).execute(
                f"INSERT INTO {events.name} (task_uuid, {', '.join(names)}) "
                f"SELECT column1, {', '.join('?' * len(names))} FROM (VALUES {', '.join(['(?)'] * len(chunk))})",
                [*shared, *chunk],
            )
