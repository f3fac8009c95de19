"""The applier's grouped writes (common.store.bulk) on SQLite and PostgreSQL, past one statement's worth of tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from common.store import Store
from common.store.bulk import insert_events, lock_tasks, update_tasks
from common.store.records import TaskState
from common.store.schema import tasks
from common.workflow import Workflow
from tests.helpers import make_project

# More than one SQLite statement's worth (bulk._SQLITE_ROWS is 4,096).
N = 5000


def _rows(store: Store, project_id: str) -> list[tuple[int, int, str | None, str | None, datetime]]:
    with store.read() as conn:
        query = select(tasks.c.id, tasks.c.version, tasks.c.lease_token, tasks.c.last_error, tasks.c.updated_at)
        return [tuple(r) for r in conn.execute(query.where(tasks.c.project_id == project_id).order_by(tasks.c.id))]


def test_a_group_is_set_on_every_task_that_kept_its_version(store: Store, seed_workflow: Workflow) -> None:
    # Given 5,000 tasks, one of which changed after it was read
    project = make_project(store, seed_workflow, [f"{i}.jpg" for i in range(N)])
    before = _rows(store, project.id)
    moved_on = before[1234][0]
    with store.write() as conn:
        conn.execute(update(tasks).where(tasks.c.id == moved_on).values(version=tasks.c.version + 1))
    at = datetime.now(UTC) + timedelta(seconds=5)

    # When one group sets a lease and an error on all of them, with the versions read before
    with store.write() as conn:
        values = {"lease_token": "hold", "last_error": "stop"}
        done = update_tasks(conn, [(values, [(i, v) for i, v, *_ in before])], at)

    # Then every task but the one that changed got the values, a new version and the time
    assert done == N - 1
    for (i, version, *_), (j, new_version, token, error, stamp) in zip(before, _rows(store, project.id), strict=True):
        assert i == j
        if i == moved_on:
            assert (new_version, token, error) == (version + 1, None, None)
        else:
            assert (new_version, token, error) == (version + 1, "hold", "stop")
            assert stamp.replace(tzinfo=stamp.tzinfo or UTC) == at


def test_the_lock_reads_what_a_result_is_applied_against(store: Store, seed_workflow: Workflow) -> None:
    # Given three tasks, one of them holding a lease, and a uuid that names no task
    project = make_project(store, seed_workflow, ["a.jpg", "b.jpg", "c.jpg"])
    records = list(store.iter_tasks(project.id))
    leased = records[1]
    with store.write() as conn:
        conn.execute(update(tasks).where(tasks.c.id == leased.id).values(lease_token="tok", attempts=2, version=7))

    # When the applier reads them (a duplicate uuid among them) under its lock
    with store.write() as conn:
        found, versions = lock_tasks(conn, [r.uuid for r in records] + [leased.uuid, "no-such-task"])

    # Then each task found comes back once with its state as stored, beside its project's workflow version
    assert sorted(found) == sorted(r.uuid for r in records)
    assert versions == {project.id: store.get_project(project.id).workflow_version}
    for r in records:
        lease = ("tok", 2, 7) if r.id == leased.id else (r.lease_token, r.attempts, r.version)
        assert found[r.uuid] == TaskState(
            r.id, r.uuid, r.project_id, r.data_hash, r.stage_uuid, r.status, r.label_branch, *lease
        )


def test_events_are_one_row_per_task_in_the_order_given(store: Store, seed_workflow: Workflow) -> None:
    # Given 5,000 tasks
    project = make_project(store, seed_workflow, [f"{i}.jpg" for i in range(N)])
    uuids = [t.uuid for t in store.iter_tasks(project.id)][::-1]
    at = datetime.now(UTC)
    shared = {
        "project_id": project.id, "actor": "agent:x", "action": "proceed", "from_stage": "a", "to_stage": "b",
        "from_status": "NEW", "to_status": "NEW", "pathway": "p", "run_id": None, "at": at,
        "detail": {"routers": ["r"]},
    }  # fmt: skip

    # When one group of events is written for all of them
    with store.write() as conn:
        insert_events(conn, [(shared, uuids)])

    # Then each task has its one event with the shared values, in the order the tasks were given
    written = store.events(project.id)
    assert [e.task_uuid for e in written] == uuids
    assert {(e.actor, e.action, e.to_stage, e.run_id) for e in written} == {("agent:x", "proceed", "b", None)}
    assert all(e.detail == {"routers": ["r"]} for e in written)


def test_a_column_a_result_may_not_change_is_refused(store: Store, seed_workflow: Workflow) -> None:
    project = make_project(store, seed_workflow, ["a.jpg"])
    ((task_id, version, *_),) = _rows(store, project.id)
    with store.write() as conn, pytest.raises(ValueError, match="data_title"):
        update_tasks(conn, [({"data_title": "x"}, [(task_id, version)])], datetime.now(UTC))


def test_values_travel_joined_unless_one_holds_a_comma() -> None:
    from common.store.bulk import joined

    # Given uuids, and values one of which holds a comma
    # When each list is joined for PostgreSQL's string_to_array
    # Then the uuids become one text, and the list with a comma is refused (it goes as an array)
    assert joined(["a1", "b2", "c3"]) == "a1,b2,c3"
    assert joined([]) == ""
    assert joined(["main", "review,2"]) is None
