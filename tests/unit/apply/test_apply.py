"""Applying completion results: lease checks, moves, labels, retries, failures (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import update

from common.enums import TaskStatus
from common.models import LabelPayload, TaskCompletionResult
from common.store import Store, TaskRecord
from common.store.apply import apply_results
from common.store.leases import FAILED, claim_tasks, list_failed
from common.store.schema import tasks
from common.workflow import Workflow, load_workflow, parse_workflow
from tests.helpers import make_project

AGENTS = Path(__file__).parents[2] / "fixtures" / "agent_pipeline.yaml"


@pytest.fixture
def wf() -> Workflow:
    return load_workflow(AGENTS)


def _claim(store: Store, project_id: str, wf: Workflow, stage: str = "Pre-label") -> list[TaskRecord]:
    return claim_tasks(store, project_id, wf.stage(stage).uuid, 100, lease_seconds=60)


def _result(task: TaskRecord, pathway: str | None = None, **kw: object) -> TaskCompletionResult:
    values: dict[str, object] = {
        "task_uuid": task.uuid,
        "stage_uuid": task.stage_uuid,
        "success": True,
        "pathway": pathway,
        "lease_token": task.lease_token,
        **kw,
    }
    return TaskCompletionResult.model_validate(values)


def _move_to(store: Store, task: TaskRecord, wf: Workflow, stage: str, keep_lease: bool = False) -> None:
    values: dict[str, object] = {"stage_uuid": wf.stage(stage).uuid}
    if not keep_lease:
        values.update(lease_token=None, lease_deadline=None)
    with store.write() as conn:
        conn.execute(update(tasks).where(tasks.c.uuid == task.uuid).values(**values))


def test_success_moves_through_router_writes_labels_and_priority(store: Store, wf: Workflow) -> None:
    # Given a claimed task in the agent stage Pre-label
    project = make_project(store, wf, ["a.jpg"])
    (task,) = _claim(store, project.id, wf)
    labelled = wf.stage("Pre-label").pathway("labelled").uuid
    labels = LabelPayload(objects=[{"name": "apple", "box": [1, 2, 3, 4]}])

    # When its result says "labelled" with labels and priority 0.0
    out = apply_results(store, [_result(task, labelled, labels=labels, priority=0.0)], num_retries=2)

    # Then it went through the router to Review 1, unleased, with the labels and priority 0.0
    assert (out.applied, out.stale, out.failed, out.retried) == (1, 0, 0, 0)
    after = store.get_task(task.uuid)
    assert after.stage_uuid == wf.stage("Review 1").uuid and after.status is TaskStatus.NEW
    assert after.lease_token is None and after.attempts == 0 and after.priority == 0.0
    assert store.get_label_row(project.id, task.data_hash).objects == labels.objects
    # And exactly one proceed event by the agent records the move
    (event,) = store.events(project.id, task.uuid)
    assert (event.action, event.actor, event.pathway) == ("proceed", "agent:Pre-label", labelled)
    assert event.detail == {"routers": [wf.stage("Split").pathway("to review").uuid]}
    assert out.moved == {wf.stage("Review 1").uuid: 1}


def test_duplicates_and_stale_results_change_nothing(store: Store, wf: Workflow) -> None:
    # Given three claimed tasks
    project = make_project(store, wf, ["a.jpg", "b.jpg", "c.jpg"])
    dup, expired, moved = _claim(store, project.id, wf)
    skip = wf.stage("Pre-label").pathway("skip").uuid
    # ... one whose lease expired and was claimed again, one a person moved meanwhile
    with store.write() as conn:
        conn.execute(update(tasks).where(tasks.c.uuid == expired.uuid).values(lease_deadline=expired.created_at))
    (reclaimed,) = _claim(store, project.id, wf)
    assert reclaimed.uuid == expired.uuid
    _move_to(store, moved, wf, "Review 1", keep_lease=True)

    # When the first result is delivered twice in one message, and again in another,
    # and old results of the other two arrive
    first = apply_results(store, [_result(dup, skip), _result(dup, skip)], num_retries=1)
    again = apply_results(store, [_result(dup, skip), _result(expired, skip), _result(moved, skip)], num_retries=1)

    # Then the task moved once, and every other result was counted stale without effect
    assert (first.applied, first.stale) == (1, 1)
    assert (again.applied, again.stale) == (0, 3)
    assert [e.action for e in store.events(project.id, dup.uuid)] == ["proceed"]
    assert store.get_task(expired.uuid).lease_token == reclaimed.lease_token
    assert store.get_task(moved.uuid).stage_uuid == wf.stage("Review 1").uuid
    assert store.events(project.id, expired.uuid) == [] and store.events(project.id, moved.uuid) == []


def test_failures_retry_with_backoff_then_fail(store: Store, wf: Workflow) -> None:
    # Given a claimed task whose handler fails
    project = make_project(store, wf, ["a.jpg"])
    (task,) = _claim(store, project.id, wf)

    # When the failure is applied with one retry allowed and no backoff
    out = apply_results(store, [_result(task, success=False, error="boom")], num_retries=1, backoff_s=0.0)

    # Then it is scheduled again and claimed again as attempt 2
    assert out.retried == 1
    waiting = store.get_task(task.uuid)
    assert waiting.last_error == "boom" and waiting.lease_token is not None
    (second,) = _claim(store, project.id, wf)
    assert second.attempts == 2

    # When the second attempt fails too
    out = apply_results(store, [_result(second, success=False, error="boom again")], num_retries=1)

    # Then it is failed for good: listed with its error, never claimed, no event
    assert out.failed == 1
    (failed,) = list_failed(store, project.id)
    assert failed.lease_token == FAILED and failed.last_error == "boom again" and failed.attempts == 2
    assert _claim(store, project.id, wf) == []
    assert store.events(project.id, task.uuid) == []


def test_backoff_keeps_the_task_until_it_passes(store: Store, wf: Workflow) -> None:
    # Given a failure applied with a long backoff
    project = make_project(store, wf, ["a.jpg"])
    (task,) = _claim(store, project.id, wf)
    apply_results(store, [_result(task, success=False, error="x")], num_retries=3, backoff_s=600)

    # When the stage is claimed again
    claimed = _claim(store, project.id, wf)

    # Then the task waits out its backoff
    assert claimed == []


def test_unknown_pathway_fails_with_the_stage_pathways_and_on_failure_is_followed(store: Store, wf: Workflow) -> None:
    # Given a task in the agent stage Check, whose workflow sends failures along 'broken'
    project = make_project(store, wf, ["a.jpg"])
    (task,) = _claim(store, project.id, wf)
    _move_to(store, task, wf, "Check")
    (task,) = _claim(store, project.id, wf, "Check")

    # When its result names a pathway the stage does not have, with no retries left
    bogus = _result(task, None).model_copy(update={"pathway": UUID(int=7)})
    out = apply_results(store, [bogus], num_retries=0)

    # Then it failed with the stage's pathways in the error and went to Archive
    assert out.failed == 1
    assert "'ok'" in out.notes[0].detail and "'broken'" in out.notes[0].detail
    after = store.get_task(task.uuid)
    assert after.stage_uuid == wf.stage("Archive").uuid and after.status is TaskStatus.COMPLETED
    assert after.last_error is not None and "no pathway" in after.last_error
    (event,) = store.events(project.id, task.uuid)
    assert event.pathway == wf.stage("Check").pathway("broken").uuid


def test_stay_clears_the_lease_or_holds_it(store: Store, wf: Workflow) -> None:
    # Given two claimed tasks
    project = make_project(store, wf, ["a.jpg", "b.jpg"])
    free, held = _claim(store, project.id, wf)

    # When both handlers say "stay", one applied with a hold
    apply_results(store, [_result(free, None, priority=0.2)], num_retries=0)
    apply_results(store, [_result(held, None)], num_retries=0, hold_s=600)

    # Then both stay in Pre-label without events; only the unheld one is claimed again
    assert store.get_task(free.uuid).priority == 0.2
    assert store.events(project.id) == []
    assert [t.uuid for t in _claim(store, project.id, wf)] == [free.uuid]


def test_the_same_message_applied_twice_at_once_takes_effect_once(store: Store, wf: Workflow) -> None:
    # Given twenty claimed tasks and one message of results for them
    project = make_project(store, wf, [f"{i}.jpg" for i in range(20)])
    claimed = _claim(store, project.id, wf)
    skip = wf.stage("Pre-label").pathway("skip").uuid
    message = [_result(t, skip) for t in claimed]

    # When two appliers apply it at the same time (a redelivery racing the first delivery)
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: apply_results(store, message, num_retries=1), range(2)))

    # Then each task moved once: one applier applied it, the other counted it stale
    assert sorted((o.applied, o.stale) for o in outcomes) == [(0, 20), (20, 0)]
    assert len(store.events(project.id)) == 20
    assert store.counts(project.id) == {wf.stage("Archive").uuid: {"COMPLETED": 20}}


def test_a_message_of_mixed_moves_sends_each_task_its_own_way() -> None:
    # Given sixty claimed tasks before a 50/50 percentage router (it splits by data unit)
    wf = parse_workflow(
        {
            "name": "Split",
            "start": "Pre-label",
            "stages": [
                {"title": "Pre-label", "type": "agent", "pathways": {"labelled": "Split", "skip": "Archive"}},
                {
                    "title": "Split",
                    "type": "percentage_router",
                    "pathways": {
                        "a": {"to": "Review A", "percentage": 50},
                        "b": {"to": "Review B", "percentage": 50},
                    },
                },
                {"title": "Review A", "type": "review", "pathways": {"approve": "Archive", "reject": "Pre-label"}},
                {"title": "Review B", "type": "review", "pathways": {"approve": "Archive", "reject": "Pre-label"}},
                {"title": "Archive", "type": "archive"},
            ],
        },
        "split workflow",
    )
    store = Store.open("sqlite://")
    project = make_project(store, wf, [f"{i}.jpg" for i in range(60)])
    claimed = _claim(store, project.id, wf)
    pre = wf.stage("Pre-label")
    labelled, skip = pre.pathway("labelled").uuid, pre.pathway("skip").uuid

    # When one message moves two thirds along "labelled" (some with priority 0.0) and the rest along "skip"
    results = [
        _result(t, labelled if i % 3 else skip, **({"priority": 0.0} if i % 5 == 0 else {}))
        for i, t in enumerate(claimed)
    ]
    out = apply_results(store, results, num_retries=1)

    # Then every task is where its own pathway (and, through the router, its data unit) leads
    assert out.applied == 60
    reached = set()
    for i, task in enumerate(claimed):
        after = store.get_task(task.uuid)
        target = pre.pathway("labelled" if i % 3 else "skip").to
        expected, routed = wf.resolve(target, task.data_hash, "agent:Pre-label")
        assert after.stage_uuid == expected.uuid and after.lease_token is None
        assert after.priority == (0.0 if i % 5 == 0 else task.priority)
        (event,) = store.events(project.id, task.uuid)
        assert event.to_stage == expected.uuid
        assert event.detail == ({"routers": [p.uuid for p in routed]} if routed else None)
        reached.add(expected.title)
    # And the router sent some each way (a 1 in 2**39 chance that it would not)
    assert reached == {"Review A", "Review B", "Archive"}
    store.close()


def test_one_message_for_two_projects_with_the_same_workflow_keeps_each_project_its_own(
    store: Store, wf: Workflow
) -> None:
    # Given two projects made from the same workflow file (so their stages have the same uuids)
    apples = make_project(store, wf, ["a1.jpg", "a2.jpg"], name="apples")
    pears = make_project(store, wf, ["p1.jpg", "p2.jpg"], name="pears")
    claimed = _claim(store, apples.id, wf) + _claim(store, pears.id, wf)
    skip = wf.stage("Pre-label").pathway("skip").uuid
    assert {t.stage_uuid for t in claimed} == {wf.stage("Pre-label").uuid}

    # When one message moves all four along the same pathway
    out = apply_results(store, [_result(t, skip) for t in claimed], num_retries=1)

    # Then each project's tasks moved, and each event belongs to its task's project
    assert out.applied == 4
    for project in (apples, pears):
        assert store.counts(project.id) == {wf.stage("Archive").uuid: {"COMPLETED": 2}}
        assert {e.task_uuid for e in store.events(project.id)} == {
            t.uuid for t in claimed if t.project_id == project.id
        }
