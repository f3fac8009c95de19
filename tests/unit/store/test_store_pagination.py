"""iter_tasks: lazy keyset pagination that yields every task once, in order, even while tasks change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

import pytest
from sqlalchemy import event

from common.enums import Role, TaskStatus
from common.store import ProjectRecord, Store
from common.workflow import Workflow
from tests.helpers import make_project

TITLES = [f"item_{i:02}.jpg" for i in range(50)]


@pytest.fixture
def project(store: Store, seed_workflow: Workflow) -> ProjectRecord:
    return make_project(store, seed_workflow, TITLES, users={"ann@acme.com": Role.ANNOTATOR})


@contextmanager
def task_queries(store: Store) -> Iterator[list[str]]:
    """Collect the SELECTs on the tasks table run while the block is open."""
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM tasks" in statement:
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)


def test_small_pages_yield_every_task_once_in_order(store: Store, project: ProjectRecord) -> None:
    # Given 50 tasks
    # When they are iterated 7 at a time
    with task_queries(store) as queries:
        got = list(store.iter_tasks(project.id, page_size=7))
    # Then each comes exactly once, in creation order, in ceil(50/7) = 8 page queries
    assert [t.data_title for t in got] == TITLES
    assert len({t.uuid for t in got}) == 50
    assert [t.id for t in got] == sorted(t.id for t in got)
    assert len(queries) == 8


def test_iteration_is_lazy(store: Store, project: ProjectRecord) -> None:
    # Given an iterator over 50 tasks, 7 per page
    with task_queries(store) as queries:
        tasks = store.iter_tasks(project.id, page_size=7)
        # When nothing is taken / Then nothing is queried
        assert queries == []
        # When 8 tasks are taken / Then exactly two pages were read, each limited to 7 rows
        first = list(islice(tasks, 8))
    assert len(first) == 8 and len(queries) == 2
    assert all("LIMIT" in q.upper() for q in queries)


def test_limit_and_filters_combine_with_paging(store: Store, project: ProjectRecord) -> None:
    # Given 50 tasks, ten of which are assigned
    for task in islice(store.iter_tasks(project.id), 10, 20):
        store.assign(task.uuid, "ann@acme.com")
    # When the NEW ones are iterated 7 at a time, and then at most 12 of them
    new = list(store.iter_tasks(project.id, filters={"status": "NEW"}, page_size=7))
    capped = list(store.iter_tasks(project.id, filters={"status": "NEW", "limit": 12}, page_size=7))
    # Then the filter applies across pages and the limit stops at 12
    assert [t.data_title for t in new] == TITLES[:10] + TITLES[20:]
    assert [t.data_title for t in capped] == (TITLES[:10] + TITLES[20:])[:12]


def test_acting_while_iterating_neither_skips_nor_repeats(store: Store, project: ProjectRecord) -> None:
    # Given an iteration over the NEW tasks of Annotate 1, 7 at a time
    start = store.workflow(project.id).start.uuid
    seen: list[str] = []
    # When each task is assigned as it is yielded (so it leaves the filter)
    for task in store.iter_tasks(project.id, start, {"status": "NEW"}, page_size=7):
        seen.append(task.data_title)
        store.assign(task.uuid, "ann@acme.com")
    # Then every task was seen exactly once, and none is NEW any more
    assert seen == TITLES
    assert list(store.iter_tasks(project.id, filters={"status": TaskStatus.NEW})) == []


def test_stage_scope_and_empty_results(store: Store, project: ProjectRecord) -> None:
    # Given all 50 tasks in Annotate 1
    wf = store.workflow(project.id)
    # When the review stage is iterated, and a page size larger than the data
    in_review = list(store.iter_tasks(project.id, wf.stage("Review 1").uuid, page_size=7))
    whole = list(store.iter_tasks(project.id, wf.start.uuid, page_size=1000))
    # Then review is empty and one big page holds everything
    assert in_review == [] and len(whole) == 50
