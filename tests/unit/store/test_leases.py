"""Claiming tasks with leases, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from common.store import Store
from common.store.leases import (
    FAILED,
    ClaimCursor,
    claim_tasks,
    count_live_leases,
    list_failed,
    next_retry_at,
    release_failed,
)
from common.store.records import now
from common.store.schema import tasks
from common.workflow import Workflow, load_workflow
from tests.conftest import _postgres_store
from tests.helpers import make_project

AGENTS = Path(__file__).parents[2] / "fixtures" / "agent_pipeline.yaml"


@pytest.fixture
def agent_workflow() -> Workflow:
    return load_workflow(AGENTS)


def _set(store: Store, task_uuid: str, **values: object) -> None:
    with store.write() as conn:
        conn.execute(update(tasks).where(tasks.c.uuid == task_uuid).values(**values))


def test_claim_takes_free_tasks_once_with_fresh_leases(store: Store, agent_workflow: Workflow) -> None:
    # Given five tasks in the agent stage Pre-label
    project = make_project(store, agent_workflow, [f"a{i}.jpg" for i in range(5)])
    stage = agent_workflow.stage("Pre-label").uuid

    # When two claims of three are made
    first = claim_tasks(store, project.id, stage, 3, lease_seconds=60)
    second = claim_tasks(store, project.id, stage, 3, lease_seconds=60)

    # Then they split the five tasks, each with its own token, attempt 1 and a bumped version
    assert len(first) == 3 and len(second) == 2
    claimed = first + second
    assert len({t.uuid for t in claimed}) == 5
    assert len({t.lease_token for t in claimed}) == 5
    assert all(t.attempts == 1 and t.version == 1 and t.lease_deadline is not None for t in claimed)
    # And nothing is left to claim while the leases live
    assert claim_tasks(store, project.id, stage, 10, lease_seconds=60) == []
    assert count_live_leases(store, project.id) == {stage: 5}


def test_claim_orders_by_priority_and_retakes_expired_leases(store: Store, agent_workflow: Workflow) -> None:
    # Given three tasks, one with a high priority
    project = make_project(store, agent_workflow, ["a.jpg", "b.jpg", "c.jpg"])
    stage = agent_workflow.stage("Pre-label").uuid
    all_tasks = list(store.iter_tasks(project.id))
    _set(store, all_tasks[2].uuid, priority=0.9)

    # When one task is claimed with a lease that has already run out
    (top,) = claim_tasks(store, project.id, stage, 1, lease_seconds=-1)

    # Then it is the high-priority one, and the next claim takes it again (re-published)
    assert top.uuid == all_tasks[2].uuid
    again = claim_tasks(store, project.id, stage, 1, lease_seconds=60)
    assert [t.uuid for t in again] == [top.uuid]
    assert again[0].attempts == 2 and again[0].lease_token != top.lease_token


def test_failed_tasks_are_never_claimed_until_released(store: Store, agent_workflow: Workflow) -> None:
    # Given two tasks, one failed for good and one waiting out a retry backoff
    project = make_project(store, agent_workflow, ["a.jpg", "b.jpg"])
    stage = agent_workflow.stage("Pre-label").uuid
    failed, waiting = list(store.iter_tasks(project.id))
    _set(store, failed.uuid, lease_token=FAILED, lease_deadline=None, attempts=3, last_error="boom")
    soon = now() + timedelta(hours=1)
    _set(store, waiting.uuid, lease_token="retry:x", lease_deadline=soon)

    # When the stage is claimed
    claimed = claim_tasks(store, project.id, stage, 10, lease_seconds=60)

    # Then neither is taken; the failed one is listed with its error; the backoff is reported
    assert claimed == []
    assert [(t.uuid, t.last_error) for t in list_failed(store, project.id)] == [(failed.uuid, "boom")]
    retry_at = next_retry_at(store, project.id, stage)
    assert retry_at is not None
    assert count_live_leases(store, project.id) == {}

    # When the failed task is released
    assert release_failed(store, project.id, [failed.uuid]) == 1

    # Then it is claimed again with its attempts counted afresh
    (again,) = claim_tasks(store, project.id, stage, 10, lease_seconds=60)
    assert again.uuid == failed.uuid and again.attempts == 1
    assert list_failed(store, project.id) == []


def test_a_pass_takes_each_free_task_once(store: Store, agent_workflow: Workflow) -> None:
    # Given a task that was released after the pass began
    project = make_project(store, agent_workflow, ["a.jpg", "b.jpg"])
    stage = agent_workflow.stage("Pre-label").uuid
    started = now()
    late, _ = list(store.iter_tasks(project.id))
    _set(store, late.uuid, updated_at=now() + timedelta(seconds=1))

    # When the pass claims
    claimed = claim_tasks(store, project.id, stage, 10, lease_seconds=60, pass_started=started)

    # Then only the other task is taken; the next pass takes the late one
    assert [t.uuid for t in claimed] != [late.uuid] and len(claimed) == 1
    later = claim_tasks(store, project.id, stage, 10, lease_seconds=60, pass_started=now() + timedelta(seconds=2))
    assert [t.uuid for t in later] == [late.uuid]


def test_concurrent_claims_never_share_a_task(store: Store, agent_workflow: Workflow) -> None:
    # Given forty free tasks
    project = make_project(store, agent_workflow, [f"{i}.jpg" for i in range(40)])
    stage = agent_workflow.stage("Pre-label").uuid

    # When four producers claim batches of eight at the same time, twice each
    def claim(_: int) -> list[str]:
        return [t.uuid for _ in range(2) for t in claim_tasks(store, project.id, stage, 8, lease_seconds=60)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        claimed = [u for batch in pool.map(claim, range(4)) for u in batch]

    # Then every task was claimed exactly once
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_a_cursor_claim_starts_after_the_last_claim_and_rescans_when_short(
    store: Store, agent_workflow: Workflow
) -> None:
    # Given ten tasks, the first one first in the claim order by priority, the last one last
    project = make_project(store, agent_workflow, [f"{i}.jpg" for i in range(10)])
    stage = agent_workflow.stage("Pre-label").uuid
    ordered = sorted(store.iter_tasks(project.id), key=lambda t: t.id)
    _set(store, ordered[0].uuid, priority=0.9)
    _set(store, ordered[-1].uuid, priority=0.1)
    cursor = ClaimCursor(rescan_s=3600)

    # When three are claimed with a cursor, and the lease of the first then runs out
    first = claim_tasks(store, project.id, stage, 3, lease_seconds=60, cursor=cursor)
    _set(store, first[0].uuid, lease_deadline=now() - timedelta(seconds=1))
    # Then the next claim goes on after the cursor, across priorities: the expired task waits
    second = claim_tasks(store, project.id, stage, 3, lease_seconds=60, cursor=cursor)
    assert [t.uuid for t in first] == [t.uuid for t in ordered[:3]]
    assert [t.uuid for t in second] == [t.uuid for t in ordered[3:6]]

    # When more is asked for than is left ahead of the cursor
    third = claim_tasks(store, project.id, stage, 10, lease_seconds=60, cursor=cursor)

    # Then the rest ahead (down to the lowest priority) is taken, and a rescan from the top finds the expired one
    assert {t.uuid for t in third} == {ordered[0].uuid, *(t.uuid for t in ordered[6:])}
    assert third[0].uuid == ordered[0].uuid and third[0].attempts == 2
    assert claim_tasks(store, project.id, stage, 10, lease_seconds=60, cursor=cursor) == []


def test_a_task_behind_the_cursor_waits_at_most_one_rescan_period(store: Store, agent_workflow: Workflow) -> None:
    # Given five tasks, two claimed with a cursor that rescans every time
    project = make_project(store, agent_workflow, [f"{i}.jpg" for i in range(5)])
    stage = agent_workflow.stage("Pre-label").uuid
    cursor = ClaimCursor(rescan_s=0)
    first = claim_tasks(store, project.id, stage, 2, lease_seconds=60, cursor=cursor)

    # When the first one's lease runs out and one more task is claimed
    _set(store, first[0].uuid, lease_deadline=now() - timedelta(seconds=1))
    (again,) = claim_tasks(store, project.id, stage, 1, lease_seconds=60, cursor=cursor)

    # Then the rescan due takes it before the tasks ahead of the cursor
    assert again.uuid == first[0].uuid


@pytest.fixture
def pg_store() -> Iterator[Store]:
    yield from _postgres_store()


def _outer_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plan's nodes that run once per statement's rows, leaving out its init plans and sub plans."""
    yield plan
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") not in ("InitPlan", "SubPlan"):
            yield from _outer_nodes(child)


def test_a_claim_on_postgresql_reaches_its_rows_by_primary_key(pg_store: Store, agent_workflow: Workflow) -> None:
    # Given 3,000 tasks in one stage on PostgreSQL, with the table's statistics up to date
    project = make_project(pg_store, agent_workflow, [f"{i}.jpg" for i in range(3000)])
    with pg_store.write() as conn:
        conn.exec_driver_sql("ANALYZE tasks")
    # When the producer claims a hundred of them
    stage = agent_workflow.stage("Pre-label").uuid
    claimed, updates = _claim_updates(pg_store, lambda: claim_tasks(pg_store, project.id, stage, 100, lease_seconds=60))
    ((sql, params),) = updates
    with pg_store.write() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0][0]["Plan"]

    # Then its update finds each claimed row through the primary key: no scan of the whole
    # table, whose cost would grow with the project rather than with the claim
    assert len(claimed) == 100
    outer = list(_outer_nodes(plan))
    assert any(node.get("Index Name") == "tasks_pkey" for node in outer), plan
    assert not any(node["Node Type"] == "Seq Scan" for node in outer), plan


def _removed_by_filter(plan: dict[str, Any]) -> int:
    """Rows every node of the plan read and threw away, summed."""
    return int(plan.get("Rows Removed by Filter", 0)) + sum(_removed_by_filter(c) for c in plan.get("Plans", []))


def _claim_updates(store: Store, claim: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """What ``claim()`` returns, and the UPDATE statements (with their parameters) it sent."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        claimed = claim()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return claimed, [(s, p) for s, p in statements if s.lstrip().upper().startswith("UPDATE")]


def _claim_plan(store: Store, claim: Any) -> dict[str, Any]:
    """The executed plan of the UPDATE that ``claim()`` sends, on the tasks as they were before it.

    The claim runs, its tasks are freed again, and its statement is run once more under
    EXPLAIN ANALYZE in a transaction that is rolled back.
    """
    claimed, updates = _claim_updates(store, claim)
    assert len(claimed) == 100
    with store.write() as conn:
        conn.execute(
            update(tasks).where(tasks.c.id.in_([t.id for t in claimed])).values(lease_token=None, lease_deadline=None)
        )
    sql, params = updates[0]
    with store.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan: dict[str, Any] = cursor.fetchone()[0][0]["Plan"]
        conn.rollback()
    return plan


def test_a_cursor_claim_on_postgresql_does_not_walk_past_the_tasks_in_flight(
    pg_store: Store, agent_workflow: Workflow
) -> None:
    # Given 3,000 tasks in one stage on PostgreSQL, 2,000 of them claimed (in flight)
    project = make_project(pg_store, agent_workflow, [f"{i}.jpg" for i in range(3000)])
    stage = agent_workflow.stage("Pre-label").uuid
    cursor = ClaimCursor(rescan_s=3600)
    assert len(claim_tasks(pg_store, project.id, stage, 2000, lease_seconds=60, cursor=cursor)) == 2000
    with pg_store.write() as conn:
        conn.exec_driver_sql("ANALYZE tasks")

    # When the next hundred are claimed from the top, and after the cursor
    from_top = _claim_plan(pg_store, lambda: claim_tasks(pg_store, project.id, stage, 100, lease_seconds=60))
    after = _claim_plan(
        pg_store, lambda: claim_tasks(pg_store, project.id, stage, 100, lease_seconds=60, cursor=cursor)
    )

    # Then the claim from the top reads and drops every task in flight; the cursor's claim none of them
    assert _removed_by_filter(from_top) >= 2000, from_top
    assert _removed_by_filter(after) < 100, after


def test_a_claim_walks_the_index_of_the_tasks_not_completed(store: Store, agent_workflow: Workflow) -> None:
    # Given 3,000 tasks in one stage, the first 1,000 of them completed there
    project = make_project(store, agent_workflow, [f"{i}.jpg" for i in range(3000)])
    stage = agent_workflow.stage("Pre-label").uuid
    with store.write() as conn:
        first = select(tasks.c.id).where(tasks.c.project_id == project.id).order_by(tasks.c.id).limit(1000)
        completed = set(conn.execute(first).scalars())
        conn.execute(update(tasks).where(tasks.c.id.in_(completed)).values(status="COMPLETED"))
        conn.exec_driver_sql("ANALYZE" if store.is_sqlite else "ANALYZE tasks")
    # When a hundred are claimed
    claimed, updates = _claim_updates(store, lambda: claim_tasks(store, project.id, stage, 100, lease_seconds=60))
    ((sql, params),) = updates
    with store.write() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(("EXPLAIN QUERY PLAN " if store.is_sqlite else "EXPLAIN (FORMAT JSON) ") + sql, params)
        plan = repr(cursor.fetchall())

    # Then none of the completed ones is taken, and the claim walks the claim-order index,
    # which holds the other tasks only (a move into a complete stage adds no entry to it)
    assert len(claimed) == 100
    assert not completed & {t.id for t in claimed}
    assert "ix_tasks_claim_order" in plan, plan


def _row_pages(store: Store) -> dict[str, int]:
    """The heap page of each task's current row version, by uuid."""
    with store.read() as conn:
        rows = conn.exec_driver_sql("SELECT uuid, (ctid::text::point)[0]::int FROM tasks").all()
    return {u: page for u, page in rows}


def test_a_claim_on_postgresql_writes_every_new_row_version_beside_the_old(
    pg_store: Store, agent_workflow: Workflow
) -> None:
    # Given 600 tasks on PostgreSQL, titles from 30 to 120 characters long
    titles = [f"s3://acme/2026-12-07/{'cam' * (i % 30)}/frame-{i:06d}.jpg" for i in range(600)]
    project = make_project(pg_store, agent_workflow, titles)
    before = _row_pages(pg_store)
    # When one claim takes all of them: every page's tasks in one statement, so none of the
    # old versions can be pruned to make room
    claimed = claim_tasks(pg_store, project.id, agent_workflow.stage("Pre-label").uuid, 600, lease_seconds=60)
    # Then each new version (a sixth longer: the lease) stayed on its row's page, the
    # condition for a HOT update, which adds no entry to the table's seven indexes
    assert len(claimed) == 600
    after = _row_pages(pg_store)
    moved = sorted(u for u in before if after[u] != before[u])
    assert moved == [], f"{len(moved)} of 600 claimed rows moved to another page"


def _index_pages(store: Store, *names: str) -> dict[str, int]:
    with store.read() as conn:
        return {n: int(conn.exec_driver_sql(f"SELECT pg_relation_size('{n}') / 8192").scalar_one()) for n in names}


def test_a_move_on_postgresql_fits_its_new_entries_into_the_indexes_filled_in_order(
    pg_store: Store, agent_workflow: Workflow
) -> None:
    # Given 3,000 tasks on PostgreSQL, created in id order as an import creates them
    project = make_project(pg_store, agent_workflow, [f"{i}.jpg" for i in range(3000)])
    in_order = ("tasks_pkey", "tasks_uuid_key", "ix_tasks_project_id")
    before = _index_pages(pg_store, *in_order, "uq_task_data_unit")
    # When every task changes stage, as a move does: a new row version, and in each index a
    # new entry (beside the old one where the index's key did not change)
    with pg_store.write() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.project_id == project.id)
            .values(stage_uuid=agent_workflow.stage("Check").uuid, version=tasks.c.version + 1)
        )
    after = _index_pages(pg_store, *in_order, "uq_task_data_unit")
    # Then the indexes filled in key order (id, the time-ordered uuid) took the new entries
    # into the room their leaves keep: a page more at most (the last leaf, filled unevenly),
    # where leaves filled to the default 90% split nearly all (27 pages became 51)
    for name in in_order:
        assert after[name] <= before[name] + 1, (name, before[name], after[name])
    # (while the data unit index, filled in the hashes' random order, had to grow)
    assert after["uq_task_data_unit"] > before["uq_task_data_unit"]
