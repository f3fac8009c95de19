"""Save a version of a project: its workflow, task states and label rows, as a delta.

Creating a version reads the project page by page, compares each page with the
previous version and writes only what differs; label objects go to
content-addressed blobs that every version shares. When the project's content
hash equals an existing version's, that version is returned and nothing is
written.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, insert, select, tuple_, update

from common.lineage import NodeKind, Ref, record_lineage
from common.store import Store
from common.store.records import now
from common.store.schema import label_rows, project_versions, tasks, version_labels, version_tasks, workflow_versions
from common.versions.content import StateHash, TaskState, blob_hash, store_blobs
from common.versions.snapshot import (
    PAGE,
    VersionRecord,
    iter_version_labels,
    iter_version_tasks,
    label_states,
    task_states,
)

__all__ = ["create_version"]

logger = logging.getLogger("annoflow.versions")


class _Unchanged(Exception):
    """Raised inside the write transaction to undo it: an equal version exists."""

    def __init__(self, version_id: int) -> None:
        self.version_id = version_id


def create_version(
    store: Store, project: str, title: str = "", description: str = "", by: str | None = None
) -> tuple[VersionRecord, bool]:
    """Save the project's current state as its next version.

    Returns the version and whether it is new: when nothing changed since an
    existing version (same content hash), that version comes back with False.

    Raises:
        NotFoundError: no such project.
    """
    proj = store.get_project(project)
    try:
        with store.write() as conn:
            vid = _write_version(conn, proj.id, proj.workflow_version, title, description, by)
    except _Unchanged as same:
        return _load(store, same.version_id), False
    version = _load(store, vid)
    with store.write() as conn:
        try:
            # Lineage is a side record: failing to write it must not lose the version.
            with conn.begin_nested():
                record_lineage(
                    conn,
                    None,
                    inputs=[Ref(kind=NodeKind.PROJECT, key=proj.id)],
                    main=Ref(kind=NodeKind.PROJECT_VERSION, key=f"{proj.id}@{version.number}"),
                )
        except Exception as e:  # the version is saved; only its lineage card is missing
            logger.warning("lineage of version %s@%s was not recorded: %s", proj.name, version.number, e)
    return version, True


def _load(store: Store, version_id: int) -> VersionRecord:
    with store.read() as conn:
        row = conn.execute(select(project_versions).where(project_versions.c.id == version_id)).mappings().one()
    return VersionRecord.model_validate(dict(row))


def _write_version(conn: Connection, pid: str, wf_version: int, title: str, description: str, by: str | None) -> int:
    prev = conn.execute(
        select(project_versions.c.id, project_versions.c.number)
        .where(project_versions.c.project_id == pid)
        .order_by(project_versions.c.number.desc())
        .limit(1)
    ).first()
    number = 1 if prev is None else int(prev[1]) + 1
    chain = list(conn.execute(select(project_versions.c.id).where(project_versions.c.project_id == pid)).scalars())
    key = conn.execute(
        insert(project_versions).values(
            project_id=pid,
            number=number,
            title=title or f"version {number}",
            description=description,
            content_hash="",
            workflow_version=wf_version,
            task_count=0,
            label_row_count=0,
            created_by=by,
            created_at=now(),
        )
    ).inserted_primary_key
    if key is None:  # pragma: no cover - every supported database returns the new id
        raise RuntimeError("the database did not return the new version's id")
    vid = int(key[0])
    definition = conn.execute(
        select(workflow_versions.c.definition).where(
            workflow_versions.c.project_id == pid, workflow_versions.c.version == wf_version
        )
    ).scalar_one()
    digest = StateHash(definition)
    prev_counts = (0, 0)
    if prev is not None:
        counts = conn.execute(
            select(project_versions.c.task_count, project_versions.c.label_row_count).where(
                project_versions.c.id == prev[0]
            )
        ).one()
        prev_counts = (int(counts[0]), int(counts[1]))
    n_tasks = _delta_tasks(conn, pid, vid, chain, digest, prev_counts[0])
    n_labels = _delta_labels(conn, pid, vid, chain, digest, prev_counts[1])
    content = digest.hexdigest()
    same = conn.execute(
        select(project_versions.c.id).where(
            project_versions.c.project_id == pid, project_versions.c.content_hash == content
        )
    ).scalar()
    if same is not None:
        raise _Unchanged(int(same))
    conn.execute(
        update(project_versions)
        .where(project_versions.c.id == vid)
        .values(content_hash=content, task_count=n_tasks, label_row_count=n_labels)
    )
    return vid


def _delta_tasks(conn: Connection, pid: str, vid: int, chain: list[int], digest: StateHash, prev_count: int) -> int:
    cols = (
        tasks.c.data_hash,
        tasks.c.stage_uuid,
        tasks.c.status,
        tasks.c.assignee,
        tasks.c.priority,
        tasks.c.label_branch,
    )
    after, seen, matched = "", 0, 0
    while True:
        rows = conn.execute(
            select(*cols)
            .where(tasks.c.project_id == pid, tasks.c.data_hash > after)
            .order_by(tasks.c.data_hash)
            .limit(PAGE)
        ).all()
        if not rows:
            break
        current = [TaskState(r[0], r[1], r[2], r[3], float(r[4]), r[5]) for r in rows]
        before = task_states(conn, chain, [s.data_hash for s in current])
        changed = [s for s in current if before.get(s.data_hash) != s]
        matched += sum(1 for s in current if before.get(s.data_hash) is not None)
        for s in current:
            digest.add_task(s)
        if changed:
            conn.execute(insert(version_tasks), [s._asdict() | {"version_id": vid, "removed": 0} for s in changed])
        seen += len(current)
        after = rows[-1][0]
    # Fewer of the previous version's tasks found than it held: some are gone.
    if matched < prev_count:
        _tombstone_tasks(conn, pid, vid, chain)
    return seen


def _tombstone_tasks(conn: Connection, pid: str, vid: int, chain: list[int]) -> None:
    # Tasks of the previous version that the project no longer has.
    for page in iter_version_tasks(conn, chain):
        hashes = [s.data_hash for s in page]
        alive = set(
            conn.execute(
                select(tasks.c.data_hash).where(tasks.c.project_id == pid, tasks.c.data_hash.in_(hashes))
            ).scalars()
        )
        gone = [s for s in page if s.data_hash not in alive]
        if gone:
            conn.execute(insert(version_tasks), [s._asdict() | {"version_id": vid, "removed": 1} for s in gone])


def _delta_labels(conn: Connection, pid: str, vid: int, chain: list[int], digest: StateHash, prev_count: int) -> int:
    lr = label_rows
    after: tuple[str, str] = ("", "")
    seen, matched = 0, 0
    while True:
        rows = conn.execute(
            select(lr.c.data_hash, lr.c.branch, lr.c.objects)
            .where(lr.c.project_id == pid, tuple_(lr.c.data_hash, lr.c.branch) > after)
            .order_by(lr.c.data_hash, lr.c.branch)
            .limit(PAGE)
        ).all()
        if not rows:
            break
        before = label_states(conn, chain, sorted({r[0] for r in rows}))
        blobs: dict[str, list[dict[str, Any]]] = {}
        changed: list[dict[str, Any]] = []
        for data_hash, branch, objects in rows:
            key = blob_hash(objects)
            digest.add_label(data_hash, branch, key)
            matched += before.get((data_hash, branch)) is not None
            if before.get((data_hash, branch)) != key:
                blobs[key] = objects
                changed.append({"data_hash": data_hash, "branch": branch, "version_id": vid, "blob_hash": key})
        store_blobs(conn, blobs)
        if changed:
            conn.execute(insert(version_labels), changed)
        seen += len(rows)
        after = (rows[-1][0], rows[-1][1])
    if matched < prev_count:
        _tombstone_labels(conn, pid, vid, chain)
    return seen


def _tombstone_labels(conn: Connection, pid: str, vid: int, chain: list[int]) -> None:
    for page in iter_version_labels(conn, chain, with_objects=False):
        hashes = sorted({d for d, _, _, _ in page})
        query = select(label_rows.c.data_hash, label_rows.c.branch).where(
            label_rows.c.project_id == pid, label_rows.c.data_hash.in_(hashes)
        )
        alive = {(str(r[0]), str(r[1])) for r in conn.execute(query)}
        gone = [
            {"data_hash": d, "branch": b, "version_id": vid, "blob_hash": None}
            for d, b, _, _ in page
            if (d, b) not in alive
        ]
        if gone:
            conn.execute(insert(version_labels), gone)
