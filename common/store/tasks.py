"""Tasks through the store: list and count them, act on one, read its history.

Listings page by task id (keyset pagination), so a project of a million tasks
is read a page at a time. :meth:`TasksMixin.act` runs one action of the
transition table in its own write transaction (:func:`common.store.lifecycle.execute`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from common.enums import Action
from common.errors import ConflictError
from common.store.filters import compile_filters
from common.store.lifecycle import ActionRequest, execute
from common.store.projects import ProjectsMixin
from common.store.records import EventRecord, SubtaskRecord, TaskRecord
from common.store.schema import events, tasks
from common.store.task_rows import load_subtasks, load_task

__all__ = ["TasksMixin"]


class TasksMixin(ProjectsMixin):
    """The tasks and events part of :class:`common.store.Store`."""

    def iter_tasks(
        self,
        project_id: str,
        stage_uuid: str | None = None,
        filters: Mapping[str, Any] | None = None,
        page_size: int = 1000,
    ) -> Iterator[TaskRecord]:
        """Yield matching tasks lazily, one keyset page at a time, in task order.

        Raises:
            InvalidInputError: a filter names an unknown field or lookup.
        """
        where, limit = compile_filters(filters)
        after = 0
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page = self.tasks_page(project_id, stage_uuid, where, after, size)
            yield from page
            if len(page) < size:
                return
            after = page[-1].id
            if left is not None:
                left -= len(page)

    def tasks_page(
        self, project_id: str, stage_uuid: str | None, where: Any, after_id: int, size: int
    ) -> list[TaskRecord]:
        """One page of tasks with ``id > after_id`` (keyset pagination)."""
        query = select(tasks).where(tasks.c.project_id == project_id, tasks.c.id > after_id, where)
        if stage_uuid is not None:
            query = query.where(tasks.c.stage_uuid == stage_uuid)
        with self.read() as conn:
            rows = conn.execute(query.order_by(tasks.c.id).limit(size)).mappings().all()
        return [TaskRecord.model_validate(dict(r)) for r in rows]

    def get_task(self, task_uuid: str) -> TaskRecord:
        """Raises: NotFoundError: no such task."""
        with self.read() as conn:
            return load_task(conn, task_uuid)

    def subtasks(self, task_uuid: str) -> list[SubtaskRecord]:
        with self.read() as conn:
            return load_subtasks(conn, task_uuid)

    def counts(self, project_id: str) -> dict[str, dict[str, int]]:
        """Task counts by stage UUID and status."""
        out: dict[str, dict[str, int]] = {}
        with self.read() as conn:
            rows = conn.execute(
                select(tasks.c.stage_uuid, tasks.c.status, func.count())
                .where(tasks.c.project_id == project_id)
                .group_by(tasks.c.stage_uuid, tasks.c.status)
            )
            for stage, status, n in rows:
                out.setdefault(stage, {})[status] = n
        return out

    def act(self, request: ActionRequest) -> TaskRecord:
        """Apply one action of the transition table, atomically.

        Raises:
            NotFoundError, TransitionNotAllowedError, ForbiddenError, ConflictError,
            InvalidInputError: see :func:`common.store.lifecycle.execute`.
        """
        task = self.get_task(request.task_uuid)
        wf = self.workflow(task.project_id)
        try:
            with self.write() as conn:
                return execute(conn, wf, request)
        except IntegrityError as e:
            raise ConflictError(f"task {request.task_uuid} changed concurrently; read it again") from e

    def assign(self, task_uuid: str, email: str, **kw: Any) -> TaskRecord:
        return self.act(ActionRequest(task_uuid, Action.ASSIGN, assignee=email, **kw))

    def events(self, project_id: str, task_uuid: str | None = None) -> list[EventRecord]:
        query = select(events).where(events.c.project_id == project_id)
        if task_uuid is not None:
            query = query.where(events.c.task_uuid == task_uuid)
        with self.read() as conn:
            return [EventRecord.model_validate(dict(r)) for r in conn.execute(query.order_by(events.c.id)).mappings()]
