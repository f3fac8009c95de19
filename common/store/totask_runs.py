"""What a ToTask run keeps in the store: claims by task id, label backups, per-task failures.

A run claims the tasks its filters matched (not a stage's next tasks, as the agent
producer does), snapshots each task's label row before its batch is published, marks
the rows whose new labels were applied, and on a critical error restores exactly
those rows. A failed task is released at once (a pre-annotation failure must not
block the task for people or agents) and its reason kept for ``annoflow runs show``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from common.models import TaskSpec
from common.store.filters import compile_filters
from common.store.leases import FAILED, lease_picked
from common.store.records import TaskRecord, now
from common.store.schema import label_rows, run_failures, run_label_backup, tasks
from common.store.store import Store

__all__ = [
    "FailureRecord",
    "TaskFailure",
    "claim_by_ids",
    "count_tasks",
    "drop_backup",
    "list_failures",
    "mark_applied",
    "mark_applied_on",
    "record_failures",
    "release_leases",
    "restore_labels",
    "snapshot_labels",
]

_CHUNK = 500  # rows per IN (...) list: well under every backend's parameter limit


@dataclass(frozen=True)
class TaskFailure:
    """One task that failed in a run, with the lease its result carried."""

    task_uuid: str
    data_title: str
    error: str
    lease_token: str | None


@dataclass(frozen=True)
class FailureRecord:
    """A stored per-task failure."""

    task_uuid: str
    data_title: str
    error: str
    at: datetime


def count_tasks(store: Store, project_id: str, filters: Mapping[str, Any] | None) -> int:
    """How many of the project's tasks match ``filters`` (their ``limit`` applied).

    Raises:
        InvalidInputError: a filter names an unknown field or lookup.
    """
    where, limit = compile_filters(filters)
    with store.read() as conn:
        n = int(conn.execute(select(func.count()).where(tasks.c.project_id == project_id, where)).scalar_one())
    return n if limit is None else min(n, limit)


def claim_by_ids(store: Store, task_ids: Sequence[int], token_prefix: str, lease_seconds: float) -> list[TaskRecord]:
    """Claim the given tasks that hold no live lease, in one statement; return those claimed.

    Each claimed task gets the lease ``<token_prefix><id>`` until ``now + lease_seconds``.
    A task a worker holds (live lease) or whose agent retries are used up (``failed``)
    is left alone; the caller reports it.
    """
    if not task_ids:
        return []
    at = now()
    free = or_(tasks.c.lease_token.is_(None), tasks.c.lease_deadline < at)
    pick = select(tasks.c.id).where(tasks.c.id.in_(list(task_ids)), free)
    return sorted(lease_picked(store, pick, token_prefix, lease_seconds, at), key=lambda t: t.id)


def snapshot_labels(store: Store, run_id: str, specs: Sequence[TaskSpec]) -> None:
    """Keep each spec's label row as it was read (the spec's ``labels``) for a rollback.

    The specs must carry their labels (built with ``include_labels=True``): the worker
    merges into exactly that version, and the applier refuses a row saved meanwhile, so
    what is kept here is what the run's write replaced.
    """
    rows = []
    for spec in specs:
        labels = spec.labels
        rows.append(
            {
                "run_id": run_id,
                "data_hash": str(spec.data_hash),
                "branch": labels.branch if labels else spec.label_branch_name,
                "project_id": spec.project_uuid,
                "existed": 1 if labels and labels.version > 0 else 0,
                "objects": list(labels.objects) if labels else [],
                "version": labels.version if labels else 0,
                "applied": 0,
            }
        )
    if rows:
        with store.write() as conn:
            conn.execute(insert(run_label_backup), rows)


def mark_applied(store: Store, run_id: str, data_hashes: Sequence[str]) -> None:
    """Record that the run's labels for these data units were written."""
    with store.write() as conn:
        mark_applied_on(conn, run_id, data_hashes)


def mark_applied_on(conn: Connection, run_id: str, data_hashes: Sequence[str]) -> None:
    """:func:`mark_applied` inside the caller's transaction."""
    for start in range(0, len(data_hashes), _CHUNK):
        conn.execute(
            update(run_label_backup)
            .where(
                run_label_backup.c.run_id == run_id,
                run_label_backup.c.data_hash.in_(list(data_hashes[start : start + _CHUNK])),
            )
            .values(applied=1)
        )


def record_failures(store: Store, run_id: str, failures: Sequence[TaskFailure]) -> None:
    """Release each failed task the run held (if it still holds the lease) and keep its reason, in one transaction."""
    if not failures:
        return
    at = now()
    with store.write() as conn:
        for f in failures:
            if not f.lease_token:
                continue  # the run never held this task: nothing to release
            # A lease the applier turned to 'failed' (a label row saved meanwhile) is the run's too.
            held = [f.lease_token, FAILED]
            conn.execute(
                update(tasks)
                .where(tasks.c.uuid == f.task_uuid, tasks.c.lease_token.in_(held))
                .values(
                    lease_token=None,
                    lease_deadline=None,
                    attempts=0,
                    last_error=f.error,
                    version=tasks.c.version + 1,
                    updated_at=at,
                )
            )
        conn.execute(
            insert(run_failures),
            [
                {"run_id": run_id, "task_uuid": f.task_uuid, "data_title": f.data_title, "error": f.error, "at": at}
                for f in failures
            ],
        )


def release_leases(store: Store, token_prefix: str) -> int:
    """Free every task still holding one of the run's leases; return how many."""
    with store.write() as conn:
        done = conn.execute(
            update(tasks)
            .where(tasks.c.lease_token.startswith(token_prefix, autoescape=True))
            .values(lease_token=None, lease_deadline=None, attempts=0, version=tasks.c.version + 1, updated_at=now())
        )
    return int(done.rowcount)


def restore_labels(store: Store, run_id: str) -> int:
    """Put back every label row the run wrote, as it was before the run; return how many.

    A row that did not exist before the run is deleted. The restored row gets a new
    version, so an editor holding the run's version cannot save over the restore.
    """
    restored = 0
    at = now()
    with store.write() as conn:
        backups = conn.execute(
            select(run_label_backup).where(run_label_backup.c.run_id == run_id, run_label_backup.c.applied == 1)
        ).mappings()
        for b in backups:
            key = and_(
                label_rows.c.project_id == b["project_id"],
                label_rows.c.data_hash == b["data_hash"],
                label_rows.c.branch == b["branch"],
            )
            if b["existed"]:
                conn.execute(
                    update(label_rows)
                    .where(key)
                    .values(objects=b["objects"], version=label_rows.c.version + 1, updated_at=at)
                )
            else:
                conn.execute(delete(label_rows).where(key))
            restored += 1
    return restored


def drop_backup(store: Store, run_id: str) -> None:
    """Forget the run's label backups (the run finished, or its rollback is done)."""
    with store.write() as conn:
        conn.execute(delete(run_label_backup).where(run_label_backup.c.run_id == run_id))


def list_failures(store: Store, run_id: str, limit: int = 100) -> tuple[int, list[FailureRecord]]:
    """How many tasks failed in the run, and the first ``limit`` of them in order."""
    with store.read() as conn:
        total = int(conn.execute(select(func.count()).where(run_failures.c.run_id == run_id)).scalar_one())
        rows = conn.execute(
            select(run_failures.c.task_uuid, run_failures.c.data_title, run_failures.c.error, run_failures.c.at)
            .where(run_failures.c.run_id == run_id)
            .order_by(run_failures.c.id)
            .limit(limit)
        ).all()
    return total, [FailureRecord(t, d, e, a) for t, d, e, a in rows]
