"""A page of one stage's tasks in id order on PostgreSQL, without an index in id order.

PostgreSQL's tasks table has no (project, stage, id) index (migration 0011): the
applier moves each task to another stage, which is not a HOT update, so every index
costs an entry per moved task. A page is instead a ``UNION ALL`` of the stage's
id-ordered ranges of ``ix_tasks_project_stage_status`` (project, stage, status, id),
one per status, which PostgreSQL reads as a Merge Append: each range entered at
``id > after``, only as much of each read as the page needs, nothing sorted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select, union_all

from common.enums import TaskStatus
from common.store.schema import tasks

__all__ = ["stage_page"]


def stage_page(project_id: str, stage_uuid: str, where: Any, after_id: int, size: int) -> Select[Any]:
    """The first ``size`` tasks of the stage with ``id > after_id`` matching ``where``, in id order.

    Each status has its own range, so a task whose status is not a :class:`TaskStatus`
    would be left out; none can be stored (every task record validates its status).
    """
    ranges = [
        select(tasks)
        .where(
            tasks.c.project_id == project_id,
            tasks.c.stage_uuid == stage_uuid,
            tasks.c.status == status.value,
            tasks.c.id > after_id,
            where,
        )
        .order_by(tasks.c.id)
        .limit(size)
        .subquery()
        for status in TaskStatus
    ]
    # Each range a subquery with its own ORDER BY and LIMIT: a plain UNION ALL is pulled up
    # into scans that lose their equalities on stage and status as sort keys, and PostgreSQL
    # then sorts every matching task of the stage instead of merging the ranges.
    merged = union_all(*(select(r) for r in ranges)).subquery("page")
    return select(merged).order_by(merged.c.id).limit(size)
