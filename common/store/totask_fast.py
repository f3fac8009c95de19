"""The ToTask fast path: a message of label results written in a few statements.

Most messages of a ToTask run are the easy case: every task still holds the
result's lease and every label row still has the version the worker merged
into. :func:`apply_labels_fast` writes those with a statement per kind of
write; anything else falls back to the result-by-result applier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from common.models import TaskCompletionResult
from common.store.bulk import driver_value
from common.store.records import now
from common.store.schema import label_rows, tasks
from common.store.store import Store
from common.store.totask_runs import mark_applied_on

__all__ = ["apply_labels_fast"]


def apply_labels_fast(
    store: Store, results: Sequence[TaskCompletionResult], run_id: str | None = None
) -> list[str] | None:
    """Write successful ToTask results in a few statements; return the applied task uuids.

    The common case of a run: every task still holds the result's lease and every label
    row still has the version the worker merged into. Then the rows are inserted or
    updated with one executemany each, and the leases cleared with one more (the task
    stays in its stage). With ``run_id``, the run's label backups of those rows are
    marked applied in the same transaction, so a rollback after a crash restores every
    row the run wrote. If anything differs (a lease lost, a row saved meanwhile),
    nothing is written and None is returned: the caller applies the message through
    :func:`common.store.apply.apply_results`, which decides result by result.
    """
    if not results or any(r.labels is None or r.lease_token is None for r in results):
        return None if results else []
    at = now()
    try:
        with store.write() as conn:
            query = select(
                tasks.c.id, tasks.c.uuid, tasks.c.project_id, tasks.c.data_hash, tasks.c.label_branch,
                tasks.c.lease_token, tasks.c.version,
            ).where(tasks.c.uuid.in_([str(r.task_uuid) for r in results]))  # fmt: skip
            if not store.is_sqlite:
                query = query.order_by(tasks.c.uuid).with_for_update()
            current = {row.uuid: row for row in conn.execute(query)}
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            task_rows: list[dict[str, Any]] = []
            for r in results:
                task = current.get(str(r.task_uuid))
                assert r.labels is not None
                if task is None or task.lease_token != r.lease_token or r.labels.branch != task.label_branch:
                    raise _Mismatch
                key = {"p": task.project_id, "h": task.data_hash, "b": task.label_branch, "objects": r.labels.objects}
                if r.labels.version == 0:
                    inserts.append(key)
                else:
                    updates.append({**key, "v": r.labels.version})
                task_rows.append({"w_id": task.id, "w_token": r.lease_token})
            _write(conn, inserts, updates, task_rows, at)
            if run_id is not None:
                mark_applied_on(conn, run_id, [k["h"] for k in inserts + updates])
    except (_Mismatch, IntegrityError):
        return None  # rolled back; the per-result path sorts it out
    return [str(r.task_uuid) for r in results]


# SQLite takes the writes as driver statements: SQLAlchemy's per-row parameter processing
# and json.dumps cost more than the writes; pydantic's Rust JSON encoder and one converted
# timestamp do the same job.
_SQLITE_INSERT = (
    "INSERT INTO label_rows (project_id, data_hash, branch, objects, version, updated_at) VALUES (?, ?, ?, ?, 1, ?)"
)
_SQLITE_UPDATE = (
    "UPDATE label_rows SET objects = ?, version = version + 1, updated_at = ? "
    "WHERE project_id = ? AND data_hash = ? AND branch = ? AND version = ?"
)
_SQLITE_RELEASE = (
    "UPDATE tasks SET lease_token = NULL, lease_deadline = NULL, attempts = 0, last_error = NULL, "
    "version = version + 1, updated_at = ? WHERE id = ? AND lease_token = ?"
)


def _write(
    conn: Connection,
    inserts: list[dict[str, Any]],
    updates: list[dict[str, Any]],
    task_rows: list[dict[str, Any]],
    at: datetime,
) -> None:
    """The fast path's three writes: new label rows, updated label rows, released leases.

    Raises:
        _Mismatch: a label row or a lease changed since it was read.
    """
    sqlite = conn.dialect.name == "sqlite"
    stamp = driver_value(conn, label_rows.c.updated_at, at)
    if inserts and sqlite:
        rows = [(k["p"], k["h"], k["b"], to_json(k["objects"]).decode(), stamp) for k in inserts]
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
    elif inserts:
        conn.execute(
            insert(label_rows),
            [
                {"project_id": k["p"], "data_hash": k["h"], "branch": k["b"], "objects": k["objects"],
                 "version": 1, "updated_at": at}
                for k in inserts
            ],
        )  # fmt: skip
    if updates and sqlite:
        changed = [(to_json(k["objects"]).decode(), stamp, k["p"], k["h"], k["b"], k["v"]) for k in updates]
        done: Any = conn.exec_driver_sql(_SQLITE_UPDATE, changed)
    elif updates:
        done = conn.execute(
            update(label_rows)
            .where(
                label_rows.c.project_id == bindparam("p"),
                label_rows.c.data_hash == bindparam("h"),
                label_rows.c.branch == bindparam("b"),
                label_rows.c.version == bindparam("v"),
            )
            .values(objects=bindparam("objects"), version=label_rows.c.version + 1, updated_at=at),
            updates,
        )
    if updates and done.rowcount != len(updates):
        raise _Mismatch
    if sqlite:
        done = conn.exec_driver_sql(_SQLITE_RELEASE, [(stamp, t["w_id"], t["w_token"]) for t in task_rows])
    else:
        done = conn.execute(
            update(tasks)
            .where(tasks.c.id == bindparam("w_id"), tasks.c.lease_token == bindparam("w_token"))
            .values(
                lease_token=None, lease_deadline=None, attempts=0, last_error=None,
                version=tasks.c.version + 1, updated_at=at,
            ),
            task_rows,
        )  # fmt: skip
    if done.rowcount != len(task_rows):
        raise _Mismatch


class _Mismatch(Exception):
    """A result does not fit the fast path; the transaction is rolled back."""
