"""Read a version back: version records and the task states and label rows of version N.

A version stores only what changed since the one before it, so the state of
version N is, per task (and per label row), the newest entry among versions
1..N of the project; a tombstone there means it was gone in version N.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, func, select, tuple_

from common.errors import NotFoundError
from common.store.schema import label_blobs, project_versions, version_labels, version_tasks
from common.versions.content import TaskState

__all__ = [
    "PAGE",
    "VersionRecord",
    "chain_ids",
    "find_version",
    "iter_version_labels",
    "iter_version_tasks",
    "label_states",
    "list_versions",
    "task_states",
]

PAGE = 2000


class VersionRecord(BaseModel):
    """One saved version of a project."""

    model_config = ConfigDict(frozen=True)

    id: int
    project_id: str
    number: int
    title: str
    description: str
    content_hash: str
    workflow_version: int
    task_count: int
    label_row_count: int
    created_by: str | None
    created_at: datetime


def list_versions(conn: Connection, project_id: str) -> list[VersionRecord]:
    query = select(project_versions).where(project_versions.c.project_id == project_id)
    return [
        VersionRecord.model_validate(dict(r))
        for r in conn.execute(query.order_by(project_versions.c.number)).mappings()
    ]


def find_version(conn: Connection, project_id: str, number: int, project_name: str = "") -> VersionRecord:
    """Raises: NotFoundError: the project has no version ``number``."""
    for v in list_versions(conn, project_id):
        if v.number == number:
            return v
    name = project_name or project_id
    raise NotFoundError(
        f"project {name!r} has no version {number}; list them with 'annoflow version list --project {name}'"
    )


def chain_ids(conn: Connection, version: VersionRecord) -> list[int]:
    """The ids of versions 1..N of the project: the deltas that make up version N."""
    query = select(project_versions.c.id).where(
        project_versions.c.project_id == version.project_id, project_versions.c.number <= version.number
    )
    return list(conn.execute(query).scalars())


def task_states(conn: Connection, chain: Sequence[int], hashes: Sequence[str]) -> dict[str, TaskState | None]:
    """The newest entry of each task in ``chain`` (None: removed); tasks never saved are absent."""
    if not chain or not hashes:
        return {}
    vt = version_tasks
    newest = (
        select(vt.c.data_hash, func.max(vt.c.version_id).label("v"))
        .where(vt.c.version_id.in_(chain), vt.c.data_hash.in_(hashes))
        .group_by(vt.c.data_hash)
        .subquery()
    )
    query = select(vt).join(newest, and_(vt.c.data_hash == newest.c.data_hash, vt.c.version_id == newest.c.v))
    return {r.data_hash: None if r.removed else _state(r) for r in conn.execute(query)}


def _state(r: Any) -> TaskState:
    return TaskState(r.data_hash, r.stage_uuid, r.status, r.assignee, float(r.priority), r.label_branch)


def label_states(conn: Connection, chain: Sequence[int], hashes: Sequence[str]) -> dict[tuple[str, str], str | None]:
    """The newest label entry per (data hash, branch) for these data units (None: removed)."""
    if not chain or not hashes:
        return {}
    vl = version_labels
    newest = (
        select(vl.c.data_hash, vl.c.branch, func.max(vl.c.version_id).label("v"))
        .where(vl.c.version_id.in_(chain), vl.c.data_hash.in_(hashes))
        .group_by(vl.c.data_hash, vl.c.branch)
        .subquery()
    )
    query = select(vl.c.data_hash, vl.c.branch, vl.c.blob_hash).join(
        newest,
        and_(vl.c.data_hash == newest.c.data_hash, vl.c.branch == newest.c.branch, vl.c.version_id == newest.c.v),
    )
    return {(d, b): h for d, b, h in conn.execute(query)}


def iter_version_tasks(conn: Connection, chain: Sequence[int], page: int = PAGE) -> Iterator[list[TaskState]]:
    """Pages of the task states of the version whose deltas are ``chain`` (removed ones left out)."""
    vt = version_tasks
    after = ""
    while True:
        keys = list(
            conn.execute(
                select(vt.c.data_hash)
                .where(vt.c.version_id.in_(chain), vt.c.data_hash > after)
                .group_by(vt.c.data_hash)
                .order_by(vt.c.data_hash)
                .limit(page)
            ).scalars()
        )
        if not keys:
            return
        states = task_states(conn, chain, keys)
        yield [s for k in keys if (s := states.get(k)) is not None]
        after = keys[-1]


def iter_version_labels(
    conn: Connection, chain: Sequence[int], page: int = PAGE, with_objects: bool = True
) -> Iterator[list[tuple[str, str, str, list[dict[str, object]] | None]]]:
    """Pages of (data hash, branch, blob hash, objects) of the version (removed rows left out)."""
    vl = version_labels
    after: tuple[str, str] = ("", "")
    while True:
        keys = conn.execute(
            select(vl.c.data_hash, vl.c.branch)
            .where(vl.c.version_id.in_(chain), tuple_(vl.c.data_hash, vl.c.branch) > after)
            .group_by(vl.c.data_hash, vl.c.branch)
            .order_by(vl.c.data_hash, vl.c.branch)
            .limit(page)
        ).all()
        if not keys:
            return
        states = label_states(conn, chain, sorted({k[0] for k in keys}))
        wanted = [(d, b, h) for d, b in keys if (h := states.get((d, b))) is not None]
        objects: dict[str, list[dict[str, object]]] = {}
        if with_objects and wanted:
            blobs = sorted({h for _, _, h in wanted})
            for i in range(0, len(blobs), 500):
                part = blobs[i : i + 500]
                rows = conn.execute(
                    select(label_blobs.c.hash, label_blobs.c.objects).where(label_blobs.c.hash.in_(part))
                )
                objects.update({h: o for h, o in rows})
        yield [(d, b, h, objects.get(h) if with_objects else None) for d, b, h in wanted]
        after = (keys[-1][0], keys[-1][1])
