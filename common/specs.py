"""Turn claimed tasks into the ``TaskSpec`` messages a worker needs.

A batch costs one query for its data units and, when the handler asked for
labels, one for their label rows; never one query per task.

The producer publishes JSON, so specs are written as JSON straight from the
rows (:func:`build_spec_json`): what every spec of a batch shares is encoded
once, and the stored files, meta and label objects are copied as the JSON text
the store holds. :func:`build_specs` parses that same JSON into models, so both
give the same specs (a test checks each against ``TaskSpec.model_dump_json``).
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from pydantic_core import to_json
from sqlalchemy import ARRAY, ColumnElement, String, Text, any_, bindparam, cast, func, select

from common.errors import InvalidInputError
from common.models import TaskSpec, WorkKind
from common.store.bulk import joined
from common.store.records import ProjectRecord, TaskRecord
from common.store.schema import data_units, label_rows
from common.store.store import Store
from common.workflow_graph import Stage

__all__ = ["SpecOptions", "build_spec_json", "build_specs"]


class SpecOptions(TypedDict, total=False):
    """What a batch's specs share besides the stage: see :func:`build_spec_json`."""

    kind: WorkKind
    run_id: str | None
    params: dict[str, Any] | None


def build_specs(
    store: Store,
    project: ProjectRecord,
    stage: Stage,
    tasks: list[TaskRecord],
    *,
    include_labels: bool,
    **options: Unpack[SpecOptions],
) -> list[TaskSpec]:
    """Build one spec per claimed task, in the order of ``tasks`` (see :func:`build_spec_json`).

    Raises:
        InvalidInputError: a task holds no lease (claim it first) or its data unit is gone.
    """
    texts = build_spec_json(store, project, stage, tasks, include_labels=include_labels, **options)
    return [TaskSpec.model_validate_json(t) for t in texts]


def build_spec_json(
    store: Store,
    project: ProjectRecord,
    stage: Stage,
    tasks: list[TaskRecord],
    *,
    include_labels: bool,
    kind: WorkKind = "agent",
    run_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> list[str]:
    """One ``TaskSpec`` JSON text per claimed task, in the order of ``tasks``.

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
    units = _unit_json(store, {t.data_hash for t in tasks})
    labels = _label_json(store, project.id, {(t.data_hash, t.label_branch) for t in tasks}) if include_labels else {}
    # What every spec of the batch shares, encoded once: the tail of each spec's object.
    shared = to_json(
        {
            "project_uuid": project.id,
            "project_name": project.name,
            "stage_uuid": stage.uuid,
            "stage_title": stage.title,
            "pathways": {p.name: p.uuid for p in stage.pathways},
            "kind": kind,
            "run_id": run_id,
            "params": params or {},
        }
    )
    tail = b"," + shared[1:]
    out = []
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
        head = to_json(
            {
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
            }
        )
        label = labels.get((task.data_hash, task.label_branch)) if include_labels else b"null"
        if label is None:  # no label row yet: an empty one at version 0
            label = b'{"branch":' + to_json(task.label_branch) + b',"version":0,"objects":[]}'
        out.append((head[:-1] + unit + b',"labels":' + label + tail).decode())
    return out


def _json_text(value: Any) -> bytes:
    """A stored JSON column as JSON bytes: SQLite hands over its text, other drivers may parse it."""
    return value.encode() if isinstance(value, str) else to_json(value)


def _one_of(store: Store, column: ColumnElement[str], values: set[str] | list[str]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(array)``: one parameter instead of thousands.

    An ``IN`` list of a fill's 5,000 hashes is a statement text of its own for every fill,
    which SQLAlchemy renders, psycopg rewrites and the server parses and plans anew; the
    array keeps the text fixed (psycopg prepares it once) and costs a fraction of that.
    It travels as one comma-joined text (:func:`common.store.bulk.joined`).
    """
    if store.is_sqlite:
        return column.in_(list(values))
    text = joined(list(values))
    if text is None:  # a value holds a comma: the array as a list, each element quoted by the driver
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column == any_(func.string_to_array(bindparam(None, text, type_=String), ","))


# Data units looked up per query on PostgreSQL. Its planner prices each looked-up unit as a
# random page read, so past about a thousand (in a table of some 300,000 units) it plans
# a scan of the whole table instead, and does so for every statement until it settles on
# a generic plan (about ten per connection); by the primary key in chunks of this size,
# every lookup stays a read of the units asked for.
_UNITS_PER_QUERY = 500


def _unit_json(store: Store, hashes: set[str]) -> dict[str, bytes]:
    """Each data unit's ``,"files":...,"meta":...`` part of a spec, from the stored JSON text."""
    wanted = sorted(hashes)
    size = max(1, len(wanted)) if store.is_sqlite else _UNITS_PER_QUERY
    rows: list[Any] = []
    with store.read() as conn:
        for start in range(0, len(wanted), size):
            chunk = wanted[start : start + size]
            rows += conn.execute(
                select(data_units.c.data_hash, cast(data_units.c.files, Text), cast(data_units.c.meta, Text)).where(
                    _one_of(store, data_units.c.data_hash, chunk)
                )
            ).all()
    return {h: b',"files":' + _json_text(files) + b',"meta":' + _json_text(meta) for h, files, meta in rows}


def _label_json(store: Store, project_id: str, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
    """The ``LabelPayload`` JSON of each ``(data_hash, branch)`` that has a label row, in one query."""
    hashes = sorted({h for h, _ in wanted})
    branches = sorted({b for _, b in wanted})
    with store.read() as conn:
        rows = conn.execute(
            select(
                label_rows.c.data_hash, label_rows.c.branch, cast(label_rows.c.objects, Text), label_rows.c.version
            ).where(
                label_rows.c.project_id == project_id,
                _one_of(store, label_rows.c.data_hash, hashes),
                _one_of(store, label_rows.c.branch, branches),
            )
        ).all()
    return {
        (data_hash, branch): b'{"branch":'
        + to_json(branch)
        + b',"version":'
        + str(int(version)).encode()
        + b',"objects":'
        + _json_text(objects)
        + b"}"
        for data_hash, branch, objects, version in rows
        if (data_hash, branch) in wanted
    }
