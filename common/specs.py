"""Turn claimed tasks into the ``TaskSpec`` messages a worker needs.

A batch costs one query for its data units and, when the handler asked for
labels, one for their label rows; never one query per task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter
from sqlalchemy import select

from common.errors import InvalidInputError
from common.models import LabelPayload, TaskSpec, WorkKind
from common.store.records import ProjectRecord, TaskRecord
from common.store.schema import data_units, label_rows
from common.store.store import Store
from common.workflow import Stage

__all__ = ["build_specs", "fetch_labels", "pathway_map"]


def pathway_map(stage: Stage) -> dict[str, UUID]:
    """The stage's pathways by name, as a spec carries them."""
    return {p.name: UUID(p.uuid) for p in stage.pathways}


def fetch_labels(store: Store, project_id: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], LabelPayload]:
    """The label rows for ``(data_hash, branch)`` keys in one query; missing rows come back empty."""
    wanted = set(keys)
    if not wanted:
        return {}
    hashes = sorted({h for h, _ in wanted})
    branches = sorted({b for _, b in wanted})
    out = {key: LabelPayload(branch=key[1]) for key in wanted}
    with store.read() as conn:
        rows = conn.execute(
            select(label_rows.c.data_hash, label_rows.c.branch, label_rows.c.objects, label_rows.c.version).where(
                label_rows.c.project_id == project_id,
                label_rows.c.data_hash.in_(hashes),
                label_rows.c.branch.in_(branches),
            )
        ).all()
    for data_hash, branch, objects, version in rows:
        if (data_hash, branch) in out:
            out[(data_hash, branch)] = LabelPayload(branch=branch, version=version, objects=list(objects))
    return out


def build_specs(
    store: Store,
    project: ProjectRecord,
    stage: Stage,
    tasks: list[TaskRecord],
    *,
    include_labels: bool,
    kind: WorkKind = "agent",
    run_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> list[TaskSpec]:
    """Build one spec per claimed task, in the order of ``tasks``.

    Args:
        store: the store to read data units (and labels) from.
        project: the tasks' project.
        stage: the stage the tasks were claimed in.
        tasks: claimed tasks (each holds a lease token).
        include_labels: put each task's current label row in its spec.
        kind: what the worker should do with the spec.
        run_id: the run the work belongs to, if any.
        params: parameters for the worker (ToTask strategies).

    Raises:
        InvalidInputError: a task holds no lease (claim it first) or its data unit is gone.
    """
    if not tasks:
        return []
    units = _unit_files(store, {t.data_hash for t in tasks})
    labels = fetch_labels(store, project.id, ((t.data_hash, t.label_branch) for t in tasks)) if include_labels else {}
    # What every spec of the batch shares, converted once.
    shared: dict[str, Any] = {
        "project_uuid": project.id,
        "project_name": project.name,
        "stage_uuid": stage.uuid,
        "stage_title": stage.title,
        "pathways": {p.name: p.uuid for p in stage.pathways},
        "kind": kind,
        "run_id": run_id,
        "params": params or {},
    }
    values = []
    for task in tasks:
        if task.lease_token is None:
            raise InvalidInputError(
                f"task {task.uuid} holds no lease; claim tasks with common.store.leases.claim_tasks before "
                "building specs"
            )
        unit = units.get(task.data_hash)
        if unit is None:
            raise InvalidInputError(
                f"task {task.uuid} refers to data unit {task.data_hash}, which is not in the store; "
                "re-import the data unit or delete the task"
            )
        label = labels.get((task.data_hash, task.label_branch))
        values.append(
            {
                **shared,
                "uuid": task.uuid,
                "data_hash": task.data_hash,
                "data_title": task.data_title,
                "label_branch_name": task.label_branch,
                "status": task.status.value,
                "assignee": task.assignee,
                "created_at": task.created_at,
                "updated_at": task.updated_at,
                "last_actioned_by": task.last_actioned_by,
                "lease_token": task.lease_token,
                "attempt": task.attempts,
                "priority": task.priority,
                "files": unit[0],
                "meta": unit[1],
                "labels": label,
            }
        )
    # One validation call for the batch; the UUID strings and the files' plain
    # dicts are checked in pydantic's core instead of being built in Python first.
    return _SPECS.validate_python(values)


_SPECS = TypeAdapter(list[TaskSpec])


def _unit_files(store: Store, hashes: set[str]) -> dict[str, tuple[Any, Any]]:
    """``(files, meta)`` of each data unit, as plain JSON values (validated as the spec is built)."""
    with store.read() as conn:
        rows = conn.execute(
            select(data_units.c.data_hash, data_units.c.files, data_units.c.meta).where(
                data_units.c.data_hash.in_(list(hashes))
            )
        ).all()
    return {h: (files, meta) for h, files, meta in rows}
