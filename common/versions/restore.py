"""Bring a version back: as a new project (the default) or in place.

A new project gets the version's workflow, the same data units (by reference),
one task per saved task state, the label rows and the members. In place, every
task and label row that differs from the version is set back; tasks imported
after the version are kept as they are. Either way each restored task gets a
``restore`` event, and the restore is a run in the lineage: version -> run -> project.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, delete, func, insert, select, tuple_, update

from common.enums import TaskStatus
from common.errors import InvalidInputError
from common.lineage import NodeKind, Ref, record_lineage
from common.store import Store
from common.store.moves import enter_stage_rows
from common.store.records import now
from common.store.schema import (
    data_units,
    events,
    label_rows,
    memberships,
    projects,
    runs,
    subtasks,
    tasks,
    workflow_versions,
)
from common.versions.snapshot import (
    PAGE,
    chain_ids,
    find_version,
    iter_version_labels,
    iter_version_tasks,
    label_states,
    task_states,
)
from common.workflow_graph import Workflow

__all__ = ["RestoreResult", "restore_version"]

logger = logging.getLogger("annoflow.versions")


class RestoreResult(BaseModel):
    """What a restore did."""

    model_config = ConfigDict(frozen=True)

    project_id: str
    project_name: str
    version: int
    in_place: bool
    run_id: str
    tasks_restored: int  # tasks created or set back
    labels_restored: int  # label rows created or set back
    labels_removed: int  # label rows that did not exist in the version
    tasks_kept: int  # in place: tasks imported after the version, left as they are
    missing_data_units: int  # saved tasks whose data unit no longer exists (skipped)


def restore_version(
    store: Store, project: str, number: int, as_name: str | None = None, in_place: bool = False, by: str | None = None
) -> RestoreResult:
    """Restore version ``number`` of ``project``.

    Raises:
        NotFoundError: no such project or version.
        InvalidInputError: ``as_name`` is taken, or given together with ``in_place``.
    """
    if in_place and as_name:
        raise InvalidInputError("--as NEW_NAME makes a new project; drop it to restore --in-place")
    source = store.get_project(project)
    with store.read() as conn:
        version = find_version(conn, source.id, number, source.name)
    wf = store.workflow(source.id, version.workflow_version)
    target_name = source.name if in_place else as_name or f"{source.name}-v{number}"
    if not in_place and any(p.name == target_name for p in store.list_projects()):
        raise InvalidInputError(f"a project named {target_name!r} exists already; pick another with --as NEW_NAME")
    run_id = str(uuid.uuid4())
    with store.write() as conn:
        chain = chain_ids(conn, version)
        at = now()
        target = source.id if in_place else str(uuid.uuid4())
        if not in_place:
            _new_project(conn, target, target_name, wf, version.workflow_version, source.id, number)
        conn.execute(
            insert(runs).values(
                id=run_id,
                project_id=target,
                kind="version_restore",
                name=f"restore {source.name} v{number}",
                status="SUCCEEDED",
                message="",
                params={"project": source.id, "version": number, "in_place": in_place},
                metrics={},
                created_at=at,
                updated_at=at,
            )
        )
        ctx = _Ctx(conn, wf, target, run_id, {"version": number, "source_project": source.id})
        kept = _restore_tasks(ctx, chain, in_place)
        added, removed = _restore_labels(ctx, chain, in_place)
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(metrics={"tasks_restored": ctx.tasks, "labels_restored": added, "labels_removed": removed})
        )
        try:
            with conn.begin_nested():  # lineage must never undo the restore
                record_lineage(
                    conn,
                    run_id,
                    inputs=[Ref(kind=NodeKind.PROJECT_VERSION, key=f"{source.id}@{number}")],
                    outputs=[Ref(kind=NodeKind.PROJECT, key=target)],
                )
        except Exception as e:  # the restore stands; only its lineage is missing
            logger.warning("lineage of restore run %s was not recorded: %s", run_id, e)
    return RestoreResult(
        project_id=target,
        project_name=target_name,
        version=number,
        in_place=in_place,
        run_id=run_id,
        tasks_restored=ctx.tasks,
        labels_restored=added,
        labels_removed=removed,
        tasks_kept=kept,
        missing_data_units=ctx.missing,
    )


class _Ctx:
    def __init__(self, conn: Connection, wf: Workflow, project_id: str, run_id: str, detail: dict[str, Any]) -> None:
        self.conn, self.wf, self.project_id, self.run_id, self.detail = conn, wf, project_id, run_id, detail
        self.tasks = 0
        self.missing = 0


def _new_project(
    conn: Connection, pid: str, name: str, wf: Workflow, wf_version: int, source_id: str, number: int
) -> None:
    at = now()
    conn.execute(
        insert(projects).values(
            id=pid,
            name=name,
            description=f"restored from version {number} of project {source_id}",
            workflow_version=1,
            created_at=at,
        )
    )
    conn.execute(insert(workflow_versions).values(project_id=pid, version=1, definition=wf.to_dict(), created_at=at))
    members = conn.execute(select(memberships.c.email, memberships.c.role).where(memberships.c.project_id == source_id))
    rows = [{"project_id": pid, "email": e, "role": r} for e, r in members]
    if rows:
        conn.execute(insert(memberships), rows)


def _restore_tasks(ctx: _Ctx, chain: list[int], in_place: bool) -> int:
    conn, saved_hashes = ctx.conn, 0
    for page in iter_version_tasks(conn, chain):
        saved_hashes += len(page)
        hashes = [s.data_hash for s in page]
        current = {
            r.data_hash: r
            for r in conn.execute(
                select(tasks).where(tasks.c.project_id == ctx.project_id, tasks.c.data_hash.in_(hashes))
            )
        }
        units = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                select(data_units.c.data_hash, data_units.c.title, data_units.c.dataset_id).where(
                    data_units.c.data_hash.in_(hashes)
                )
            )
        }
        new_tasks, new_events, new_subs = [], [], []
        at = now()
        for s in page:
            cur = current.get(s.data_hash)
            stage = ctx.wf.stage(s.stage_uuid)
            if cur is None:
                if s.data_hash not in units:
                    ctx.missing += 1
                    continue
                tid = str(uuid.uuid4())
                title, dataset_id = units[s.data_hash]
                new_tasks.append(
                    {
                        "uuid": tid,
                        "project_id": ctx.project_id,
                        "data_hash": s.data_hash,
                        "data_title": title,
                        "dataset_id": dataset_id,
                        "stage_uuid": s.stage_uuid,
                        "status": s.status,
                        "assignee": s.assignee,
                        "priority": s.priority,
                        "label_branch": s.label_branch,
                        "created_at": at,
                        "updated_at": at,
                        "attempts": 0,
                        "version": 0,
                    }
                )
                new_subs.extend(enter_stage_rows(stage, tid, TaskStatus(s.status)))
                new_events.append(_event(ctx, tid, None, None, s.stage_uuid, s.status, at))
            elif (cur.stage_uuid, cur.status, cur.assignee, float(cur.priority), cur.label_branch) != tuple(s)[1:]:
                # Bumping the version makes any in-flight worker result for this task lose.
                conn.execute(
                    update(tasks)
                    .where(tasks.c.id == cur.id)
                    .values(
                        stage_uuid=s.stage_uuid,
                        status=s.status,
                        assignee=s.assignee,
                        priority=s.priority,
                        label_branch=s.label_branch,
                        lease_token=None,
                        lease_deadline=None,
                        version=tasks.c.version + 1,
                        updated_at=at,
                    )
                )
                if cur.stage_uuid != s.stage_uuid:
                    conn.execute(delete(subtasks).where(subtasks.c.task_uuid == cur.uuid))
                    new_subs.extend(enter_stage_rows(stage, cur.uuid, TaskStatus(s.status)))
                new_events.append(_event(ctx, cur.uuid, cur.stage_uuid, cur.status, s.stage_uuid, s.status, at))
        if new_tasks:
            conn.execute(insert(tasks), new_tasks)
        if new_subs:
            conn.execute(insert(subtasks), new_subs)
        if new_events:
            conn.execute(insert(events), new_events)
        ctx.tasks += len(new_events)
    if not in_place:
        return 0
    total = conn.execute(select(func.count()).select_from(tasks).where(tasks.c.project_id == ctx.project_id)).scalar()
    return max(0, int(total or 0) - saved_hashes)


def _event(
    ctx: _Ctx, task_uuid: str, from_stage: str | None, from_status: str | None, to_stage: str, to_status: str, at: Any
) -> dict[str, Any]:
    return {
        "project_id": ctx.project_id,
        "task_uuid": task_uuid,
        "actor": None,
        "action": "restore",
        "from_stage": from_stage,
        "to_stage": to_stage,
        "from_status": from_status,
        "to_status": to_status,
        "pathway": None,
        "run_id": ctx.run_id,
        "at": at,
        "detail": ctx.detail,
    }


def _restore_labels(ctx: _Ctx, chain: list[int], in_place: bool) -> tuple[int, int]:
    conn, restored, removed = ctx.conn, 0, 0
    at = now()
    for page in iter_version_labels(conn, chain):
        hashes = sorted({d for d, _, _, _ in page})
        current = {
            (r.data_hash, r.branch): r.objects
            for r in conn.execute(
                select(label_rows.c.data_hash, label_rows.c.branch, label_rows.c.objects).where(
                    label_rows.c.project_id == ctx.project_id, label_rows.c.data_hash.in_(hashes)
                )
            )
        }
        inserts = []
        for d, b, _, objects in page:
            if (d, b) not in current:
                inserts.append(
                    {
                        "project_id": ctx.project_id,
                        "data_hash": d,
                        "branch": b,
                        "objects": objects,
                        "version": 1,
                        "updated_at": at,
                    }
                )
            elif current[(d, b)] != objects:
                conn.execute(
                    update(label_rows)
                    .where(
                        label_rows.c.project_id == ctx.project_id, label_rows.c.data_hash == d, label_rows.c.branch == b
                    )
                    .values(objects=objects, version=label_rows.c.version + 1, updated_at=at)
                )
                restored += 1
        if inserts:
            conn.execute(insert(label_rows), inserts)
            restored += len(inserts)
    if in_place:
        removed = _drop_newer_labels(ctx, chain)
    return restored, removed


def _drop_newer_labels(ctx: _Ctx, chain: list[int]) -> int:
    """Delete label rows the version did not have, on tasks the version had."""
    conn, lr, removed = ctx.conn, label_rows, 0
    after: tuple[str, str] = ("", "")
    while True:
        rows = conn.execute(
            select(lr.c.data_hash, lr.c.branch)
            .where(lr.c.project_id == ctx.project_id, tuple_(lr.c.data_hash, lr.c.branch) > after)
            .order_by(lr.c.data_hash, lr.c.branch)
            .limit(PAGE)
        ).all()
        if not rows:
            return removed
        hashes = sorted({d for d, _ in rows})
        had_task = task_states(conn, chain, hashes)
        had_label = label_states(conn, chain, hashes)
        gone = [(d, b) for d, b in rows if had_task.get(d) is not None and had_label.get((d, b)) is None]
        if gone:
            conn.execute(
                delete(lr).where(lr.c.project_id == ctx.project_id, tuple_(lr.c.data_hash, lr.c.branch).in_(gone))
            )
            removed += len(gone)
        after = (rows[-1][0], rows[-1][1])
