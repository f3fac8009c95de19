"""The store's wake-up signal: a commit of another connection is seen, a claim and a rollback are not."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import update

from common.store import Store
from common.store.leases import claim_tasks
from common.store.schema import tasks
from common.store.wakeups import NoSignal, listen
from common.workflow import Workflow
from tests.helpers import make_units


def _project(store: Store, wf: Workflow) -> str:
    project = store.create_project("wake", wf)
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(["a", "b"]))
    return project.id


def test_a_commit_is_pending_once_then_not(store: Store, seed_workflow: Workflow) -> None:
    # Given a listener on the store's database
    project_id = _project(store, seed_workflow)
    signal = listen(store.engine)
    try:
        assert not signal.pending()

        # When another connection commits a change (a task moved to another status, say)
        with store.write() as conn:
            conn.execute(update(tasks).where(tasks.c.project_id == project_id).values(priority=0.9))

        # Then the listener sees it once
        assert _eventually(signal.pending)
        assert not signal.pending()
    finally:
        signal.close()


def test_a_claim_and_a_rollback_wake_nobody_on_postgresql(postgres_store: Store, seed_workflow: Workflow) -> None:
    # Given a listener, and tasks to claim
    store = postgres_store
    project_id = _project(store, seed_workflow)
    stage = store.workflow(project_id).stage("Annotate 1")
    signal = listen(store.engine)
    try:
        signal.pending()

        # When the producer claims (its own writes say wake=False) and a write rolls back
        assert claim_tasks(store, project_id, stage.uuid, 2, 60)
        with pytest.raises(RuntimeError), store.write() as conn:
            conn.execute(update(tasks).values(priority=0.1))
            raise RuntimeError("rolled back")

        # Then no wake-up arrives
        assert not _eventually(signal.pending, tries=20)
    finally:
        signal.close()


def test_an_in_memory_database_has_no_signal() -> None:
    store = Store.open("sqlite:///:memory:")
    try:
        assert isinstance(listen(store.engine), NoSignal)
    finally:
        store.close()


def _eventually(check: Callable[[], bool], tries: int = 100) -> bool:
    """A notification travels through the server: look for up to ``tries`` x 10 ms."""
    for _ in range(tries):
        if check():
            return True
        time.sleep(0.01)
    return False
