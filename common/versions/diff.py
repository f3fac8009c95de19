"""Compare two versions of a project: label objects added, changed, removed; tasks moved.

Versions are deltas, so only the tasks and label rows written by the versions
between A and B can differ; the comparison reads just those, not the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from common.store import Store
from common.store.schema import data_units, label_blobs, project_versions, version_labels, version_tasks
from common.versions.content import canonical
from common.versions.snapshot import chain_ids, find_version, label_states, task_states

__all__ = ["StageChange", "VersionDiff", "diff_versions"]

# Keys that identify an annotation object across edits (first one present wins).
_IDENTITY_KEYS = ("objectHash", "object_hash", "hash", "id", "uuid")
_LIST_LIMIT = 1000


class StageChange(BaseModel):
    """A task that stands in a different stage in B than in A."""

    model_config = ConfigDict(frozen=True)

    data_hash: str
    data_title: str
    stage_a: str
    stage_b: str


class VersionDiff(BaseModel):
    """What changed from version A to version B."""

    model_config = ConfigDict(frozen=True)

    project: str
    a: int
    b: int
    objects_added: int
    objects_changed: int
    objects_removed: int
    label_rows_changed: int
    tasks_added: int
    tasks_removed: int
    tasks_status_changed: int
    stage_changes_total: int
    stage_changes: list[StageChange]  # the first 1,000


def _identity(obj: Any) -> str:
    if isinstance(obj, dict):
        for key in _IDENTITY_KEYS:
            if key in obj:
                return f"{key}={obj[key]}"
    # No id: the object is its content, so an edit reads as one removed and one added.
    return canonical(obj)


def _compare_objects(old: list[Any], new: list[Any]) -> tuple[int, int, int]:
    a = {_identity(o): canonical(o) for o in old}
    b = {_identity(o): canonical(o) for o in new}
    added = sum(1 for k in b if k not in a)
    removed = sum(1 for k in a if k not in b)
    changed = sum(1 for k in b if k in a and a[k] != b[k])
    return added, changed, removed


def diff_versions(store: Store, project: str, a: int, b: int) -> VersionDiff:
    """Compare versions ``a`` and ``b`` of ``project`` (either order; B is "after").

    Raises:
        NotFoundError: no such project or version.
    """
    proj = store.get_project(project)
    with store.read() as conn:
        va, vb = find_version(conn, proj.id, a, proj.name), find_version(conn, proj.id, b, proj.name)
        chain_a, chain_b = chain_ids(conn, va), chain_ids(conn, vb)
        lo, hi = sorted((va.number, vb.number))
        between = list(
            conn.execute(
                select(project_versions.c.id).where(
                    project_versions.c.project_id == proj.id,
                    project_versions.c.number > lo,
                    project_versions.c.number <= hi,
                )
            ).scalars()
        )
        counts = {"tasks_added": 0, "tasks_removed": 0, "status": 0, "stages": 0}
        changes: list[StageChange] = []
        task_keys = _keys(conn, version_tasks.c.data_hash, version_tasks.c.version_id, between)
        wf_a, wf_b = store.workflow(proj.id, va.workflow_version), store.workflow(proj.id, vb.workflow_version)
        for part in _chunks(task_keys):
            sa, sb = task_states(conn, chain_a, part), task_states(conn, chain_b, part)
            query = select(data_units.c.data_hash, data_units.c.title).where(data_units.c.data_hash.in_(part))
            titles = {str(r[0]): str(r[1]) for r in conn.execute(query)}
            for key in part:
                x, y = sa.get(key), sb.get(key)
                if x is None and y is not None:
                    counts["tasks_added"] += 1
                elif x is not None and y is None:
                    counts["tasks_removed"] += 1
                elif x is not None and y is not None:
                    if x.stage_uuid != y.stage_uuid:
                        counts["stages"] += 1
                        if len(changes) < _LIST_LIMIT:
                            changes.append(
                                StageChange(
                                    data_hash=key,
                                    data_title=titles.get(key, key),
                                    stage_a=_title(wf_a, x.stage_uuid),
                                    stage_b=_title(wf_b, y.stage_uuid),
                                )
                            )
                    elif x.status != y.status:
                        counts["status"] += 1
        added = changed = removed = rows = 0
        label_keys = _keys(conn, version_labels.c.data_hash, version_labels.c.version_id, between)
        for part in _chunks(label_keys):
            la, lb = label_states(conn, chain_a, part), label_states(conn, chain_b, part)
            pairs = [(k, la.get(k), lb.get(k)) for k in sorted(set(la) | set(lb))]
            pairs = [p for p in pairs if p[1] != p[2]]
            blobs = _blobs(conn, {h for _, old, new in pairs for h in (old, new) if h})
            for _, old, new in pairs:
                rows += 1
                d = _compare_objects(blobs.get(old or "", []), blobs.get(new or "", []))
                added, changed, removed = added + d[0], changed + d[1], removed + d[2]
    return VersionDiff(
        project=proj.name,
        a=a,
        b=b,
        objects_added=added,
        objects_changed=changed,
        objects_removed=removed,
        label_rows_changed=rows,
        tasks_added=counts["tasks_added"],
        tasks_removed=counts["tasks_removed"],
        tasks_status_changed=counts["status"],
        stage_changes_total=counts["stages"],
        stage_changes=changes,
    )


def _title(wf: Any, stage_uuid: str) -> str:
    stage = wf.stages.get(stage_uuid)
    return str(stage.title) if stage is not None else stage_uuid


def _keys(conn: Connection, key_col: Any, version_col: Any, between: list[int]) -> list[str]:
    if not between:
        return []
    return sorted(set(conn.execute(select(key_col).where(version_col.in_(between)).distinct()).scalars()))


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _blobs(conn: Connection, hashes: set[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    keys = sorted(hashes)
    for part in _chunks(keys):
        query = select(label_blobs.c.hash, label_blobs.c.objects).where(label_blobs.c.hash.in_(part))
        out.update({str(r[0]): r[1] for r in conn.execute(query)})
    return out
