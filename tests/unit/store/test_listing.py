"""Listings in id order: the same tasks in the same order on both backends, and on PostgreSQL
without the two id-order indexes (migration 0011) the stage-status index serves a stage's pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text, update

from common.enums import TaskStatus
from common.store import ProjectRecord, Store
from common.store.engine import create_tables
from common.store.schema import tasks
from common.workflow import Workflow
from tests.helpers import make_project
from tests.servers import POSTGRES_URL, postgres_schema


def _spread(store: Store, project: ProjectRecord, stages: list[str]) -> None:
    """Put each task in a stage and a status that depend on its id (ids interleave across them)."""
    statuses = list(TaskStatus)
    with store.write() as conn:
        ids = list(conn.execute(select(tasks.c.id).where(tasks.c.project_id == project.id)).scalars())
        for i in ids:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == i)
                .values(stage_uuid=stages[i % len(stages)], status=statuses[(i * 7 // 3) % len(statuses)].value)
            )


def _ids(store: Store, project_id: str, *where: Any) -> list[int]:
    with store.read() as conn:
        query = select(tasks.c.id).where(tasks.c.project_id == project_id, *where).order_by(tasks.c.id)
        return list(conn.execute(query).scalars())


def test_a_stage_lists_its_tasks_in_id_order_across_statuses_and_pages(store: Store, seed_workflow: Workflow) -> None:
    # Given 120 tasks spread over the stages and every status, and a second project's tasks
    project = make_project(store, seed_workflow, [f"{i}.jpg" for i in range(120)])
    other = make_project(store, seed_workflow, [f"o{i}.jpg" for i in range(30)], name="pears")
    stages = [str(s) for s in seed_workflow.stages]
    _spread(store, project, stages)
    _spread(store, other, stages)
    for stage in stages:
        # When a stage is listed 7 at a time, with and without a status filter and a limit
        listed = [t.id for t in store.iter_tasks(project.id, stage, page_size=7)]
        waiting = [t.id for t in store.iter_tasks(project.id, stage, {"status__in": ["NEW", "SKIPPED"]}, page_size=7)]
        capped = [t.id for t in store.iter_tasks(project.id, stage, {"limit": 11}, page_size=4)]
        # Then each gives the stage's tasks of this project, in id order, each once
        expected = _ids(store, project.id, tasks.c.stage_uuid == stage)
        assert listed == expected and len(expected) == 40
        assert waiting == _ids(store, project.id, tasks.c.stage_uuid == stage, tasks.c.status.in_(["NEW", "SKIPPED"]))
        assert capped == expected[:11]
    # And a whole project still lists in id order
    assert [t.id for t in store.iter_tasks(project.id, page_size=9)] == _ids(store, project.id)


def _indexes(store: Store, schema: str) -> set[str]:
    with store.read() as conn:
        rows = conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks' AND schemaname = :schema"),
            {"schema": schema},
        ).scalars()
        return set(rows)


@pytest.mark.parametrize("build", ["migrations", "definitions"])
def test_tasks_on_postgresql_have_no_id_order_listing_indexes(build: str) -> None:
    # Given a PostgreSQL store built by the migrations, or straight from the table definitions
    with postgres_schema("i") as schema:
        store = Store.open(POSTGRES_URL, schema=schema, upgrade=build == "migrations")
        try:
            if build == "definitions":
                create_tables(store.engine)
            # When the tasks table's indexes are listed
            names = _indexes(store, schema)
        finally:
            store.close()
    # Then the five that the applier's move must update remain, and the two id-order ones are gone
    assert names == {
        "tasks_pkey",
        "tasks_uuid_key",
        "uq_task_data_unit",
        "ix_tasks_project_stage_status",
        "ix_tasks_claim_order",
    }


@pytest.fixture
def pg_store() -> Iterator[Store]:
    from tests.conftest import _postgres_store

    yield from _postgres_store()


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_a_stage_page_on_postgresql_merges_ranges_of_the_stage_status_index(
    pg_store: Store, seed_workflow: Workflow
) -> None:
    # Given 3,000 tasks on PostgreSQL, 300 of them in one stage in several statuses, statistics up to date
    project = make_project(pg_store, seed_workflow, [f"{i}.jpg" for i in range(3000)])
    listed, rest = [str(s) for s in seed_workflow.stages][:2]
    _spread(pg_store, project, [listed] + [rest] * 9)
    with pg_store.write() as conn:
        conn.exec_driver_sql("ANALYZE tasks")
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    # When the second page of 50 of that stage is read, and its statement run again under EXPLAIN ANALYZE
    first = pg_store.tasks_page(project.id, listed, text("true"), 0, 50)
    event.listen(pg_store.engine, "before_cursor_execute", record)
    try:
        page = pg_store.tasks_page(project.id, listed, text("true"), first[-1].id, 50)
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", record)
    ((sql, params),) = statements
    with pg_store.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan: dict[str, Any] = cursor.fetchone()[0][0]["Plan"]
        conn.rollback()

    # Then the page is the stage's next 50 in id order, merged from the stage-status index's
    # ranges (one per status) without sorting the stage, and no range read past what the page took
    expected = _ids(pg_store, project.id, tasks.c.stage_uuid == listed)
    assert [t.id for t in first + page] == expected[:100]
    nodes = list(_nodes(plan))
    assert any(n["Node Type"] == "Merge Append" for n in nodes), plan
    assert not any(n["Node Type"] in ("Sort", "Seq Scan") for n in nodes), plan
    scans = [n for n in nodes if n["Node Type"] == "Index Scan"]
    assert len(scans) == len(TaskStatus), plan
    assert all(n["Index Name"] == "ix_tasks_project_stage_status" for n in scans), plan
    assert sum(int(n["Actual Rows"]) for n in scans) <= 50 + len(TaskStatus), plan
