"""Every action of the transition table, its effect, its event, and its refusals, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from common.enums import Action, Role, StageType, TaskStatus
from common.errors import ConflictError, InvalidInputError, NotFoundError, TransitionNotAllowedError
from common.sdk import AgentStage, AnnotationStage, Client, FinalStage
from common.store import ActionRequest, ProjectRecord, Store, TaskRecord
from common.transitions import TRANSITIONS
from common.workflow import Workflow, load_workflow
from tests.conftest import FIXTURES
from tests.helpers import make_project

ADMIN, ANN, REV = "admin@acme.com", "ann@acme.com", "rev@acme.com"
USERS = {ADMIN: Role.ADMIN, ANN: Role.ANNOTATOR, REV: Role.REVIEWER}
S = TaskStatus


@pytest.fixture
def apples(store: Store, seed_workflow: Workflow) -> ProjectRecord:
    return make_project(store, seed_workflow, ["a.jpg", "b.jpg"], users=USERS)


@pytest.fixture
def pipeline(store: Store) -> ProjectRecord:
    wf = load_workflow(FIXTURES / "pipeline.yaml")
    return make_project(store, wf, ["p1.jpg", "p2.jpg"], name="pipeline", users=USERS)


def task_of(store: Store, project: ProjectRecord, title: str) -> TaskRecord:
    (task,) = store.iter_tasks(project.id, filters={"data_title": title})
    return task


def act(store: Store, task: TaskRecord, action: Action, **kw: Any) -> TaskRecord:
    return store.act(ActionRequest(task.uuid, action, **kw))


def where(store: Store, task: TaskRecord) -> tuple[str, TaskStatus, str | None]:
    fresh = store.get_task(task.uuid)
    return store.workflow(fresh.project_id).stages[fresh.stage_uuid].title, fresh.status, fresh.assignee


def to_review(store: Store, project: ProjectRecord, title: str) -> TaskRecord:
    task = task_of(store, project, title)
    act(store, task, Action.ASSIGN, assignee=ANN)
    act(store, task, Action.SUBMIT)
    return act(store, task, Action.ASSIGN, assignee=REV)


def test_every_rule_of_the_table_is_covered_here() -> None:
    # Given the table / Then it holds exactly the actions this module tests (a new rule needs a new test)
    assert {(t.value, a.value) for t, a in TRANSITIONS} == {
        ("annotation", "assign"), ("annotation", "release"), ("annotation", "skip"), ("annotation", "submit"),
        ("review", "assign"), ("review", "release"), ("review", "approve"), ("review", "reject"),
        ("consensus_annotation", "assign"), ("consensus_annotation", "release"), ("consensus_annotation", "submit"),
        ("consensus_review", "assign"), ("consensus_review", "release"), ("consensus_review", "approve"),
        ("consensus_review", "reject"), ("agent", "proceed"), ("complete", "reopen"), ("archive", "reopen"),
    }  # fmt: skip


# ------------------------------------------------------------------ annotation


def test_annotation_assign_then_release(store: Store, apples: ProjectRecord) -> None:
    # Given a NEW task
    task = task_of(store, apples, "a.jpg")
    # When it is assigned to ann
    act(store, task, Action.ASSIGN, assignee=ANN)
    # Then ann holds it
    assert where(store, task) == ("Annotate 1", S.ASSIGNED, ANN)
    # When ann releases it
    act(store, task, Action.RELEASE)
    # Then nobody holds it, and both moves are in the history
    assert where(store, task) == ("Annotate 1", S.RELEASED, None)
    history = store.events(apples.id, task.uuid)
    assert [(e.action, e.from_status, e.to_status, e.actor) for e in history] == [
        ("assign", "NEW", "ASSIGNED", ANN),
        ("release", "ASSIGNED", "RELEASED", ANN),
    ]


def test_annotation_skip_then_reassign(store: Store, apples: ProjectRecord) -> None:
    # Given a task ann holds
    task = act(store, task_of(store, apples, "a.jpg"), Action.ASSIGN, assignee=ANN)
    # When ann skips it
    act(store, task, Action.SKIP, by=ANN)
    # Then it is SKIPPED and unassigned; skipping again is refused; it can be assigned again
    assert where(store, task) == ("Annotate 1", S.SKIPPED, None)
    with pytest.raises(TransitionNotAllowedError, match=r"cannot skip a SKIPPED task in stage 'Annotate 1'"):
        act(store, task, Action.SKIP, by=ANN)
    act(store, task, Action.ASSIGN, assignee=ANN)
    assert where(store, task) == ("Annotate 1", S.ASSIGNED, ANN)


def test_annotation_submit_moves_along_the_only_pathway(store: Store, apples: ProjectRecord) -> None:
    # Given a task ann holds
    task = act(store, task_of(store, apples, "a.jpg"), Action.ASSIGN, assignee=ANN)
    wf = store.workflow(apples.id)
    # When ann submits it
    moved = act(store, task, Action.SUBMIT)
    # Then it is NEW and unassigned in Review 1, and the event names the pathway
    assert where(store, task) == ("Review 1", S.NEW, None)
    assert moved.last_actioned_by == ANN and moved.version == task.version + 1
    last = store.events(apples.id, task.uuid)[-1]
    assert (last.action, last.pathway, last.to_stage) == (
        "submit",
        wf.start.pathways[0].uuid,
        wf.stage("Review 1").uuid,
    )


def test_annotation_submit_needs_the_task_held(store: Store, apples: ProjectRecord) -> None:
    # Given a NEW task / When it is submitted / Then it is refused with the fix
    task = task_of(store, apples, "a.jpg")
    with pytest.raises(TransitionNotAllowedError, match=r"cannot submit a NEW task.*ASSIGNED \(assign it first\)"):
        act(store, task, Action.SUBMIT, by=ANN)
    with pytest.raises(TransitionNotAllowedError, match=r"cannot release a NEW task"):
        act(store, task, Action.RELEASE, by=ANN)
    assert where(store, task) == ("Annotate 1", S.NEW, None)


# ---------------------------------------------------------------------- review


def test_review_assign_release_approve(store: Store, apples: ProjectRecord) -> None:
    # Given a task in Review 1 that rev holds
    task = to_review(store, apples, "a.jpg")
    assert where(store, task) == ("Review 1", S.ASSIGNED, REV)
    # When rev releases, takes it again and approves
    act(store, task, Action.RELEASE)
    assert where(store, task) == ("Review 1", S.RELEASED, None)
    act(store, task, Action.ASSIGN, assignee=REV)
    act(store, task, Action.APPROVE)
    # Then it is COMPLETED in Complete
    assert where(store, task) == ("Complete", S.COMPLETED, None)


def test_review_reject_arrives_reopened(store: Store, apples: ProjectRecord) -> None:
    # Given a task in Review 1 that rev holds
    task = to_review(store, apples, "a.jpg")
    # When rev rejects it
    act(store, task, Action.REJECT)
    # Then it is back in Annotate 1, REOPENED, and can be worked on again
    assert where(store, task) == ("Annotate 1", S.REOPENED, None)
    act(store, task, Action.ASSIGN, assignee=ANN)
    act(store, task, Action.SUBMIT)
    assert where(store, task) == ("Review 1", S.NEW, None)


def test_review_refusals_name_the_valid_actions(store: Store, apples: ProjectRecord) -> None:
    # Given a NEW task in Review 1
    task = task_of(store, apples, "a.jpg")
    act(store, task, Action.ASSIGN, assignee=ANN)
    act(store, task, Action.SUBMIT)
    # When it is approved unassigned, or skipped / Then both are refused, saying what applies
    with pytest.raises(TransitionNotAllowedError, match=r"cannot approve a NEW task in stage 'Review 1'"):
        act(store, task, Action.APPROVE, by=REV)
    with pytest.raises(
        TransitionNotAllowedError, match=r"'skip' is not an action of review stage 'Review 1'; its actions are: approve"
    ):
        act(store, task, Action.SKIP, by=REV)
    assert where(store, task) == ("Review 1", S.NEW, None)


# ----------------------------------------------------------------------- agent


def test_agent_proceed_by_name_routes_through_the_router(store: Store, pipeline: ProjectRecord) -> None:
    # Given a task in the Triage agent stage
    task = task_of(store, pipeline, "p1.jpg")
    wf = store.workflow(pipeline.id)
    # When the agent proceeds along "annotate" (into the Split router)
    act(store, task, Action.PROCEED, pathway="annotate", by="agent:triage")
    # Then it lands in one of the router's annotation stages, and the event records the router's choice
    stage, status, _ = where(store, task)
    assert stage in ("Annotate fast", "Annotate careful") and status is S.NEW
    last = store.events(pipeline.id, task.uuid)[-1]
    assert last.pathway == wf.stage("Triage").pathway("annotate").uuid
    assert last.detail is not None and len(last.detail["routers"]) == 1


def test_agent_proceed_by_uuid(store: Store, pipeline: ProjectRecord) -> None:
    # Given a task in Triage and the UUID of its "discard" pathway
    task = task_of(store, pipeline, "p1.jpg")
    discard = store.workflow(pipeline.id).stage("Triage").pathway("discard").uuid
    # When the agent proceeds by UUID
    act(store, task, Action.PROCEED, pathway=discard)
    # Then it is in Archive, COMPLETED
    assert where(store, task) == ("Archive", S.COMPLETED, None)


def test_agent_proceed_refuses_unknown_and_foreign_pathways(store: Store, pipeline: ProjectRecord) -> None:
    # Given a task in Triage, and the UUID of a pathway that belongs to another stage
    task = task_of(store, pipeline, "p1.jpg")
    foreign = store.workflow(pipeline.id).stage("Review").pathway("approve").uuid
    # When the agent names an unknown pathway, a foreign one, or none / Then each is refused, listing the pathways
    with pytest.raises(NotFoundError, match=r"stage 'Triage' has no pathway 'finish'; its pathways are: 'annotate'"):
        act(store, task, Action.PROCEED, pathway="finish")
    with pytest.raises(NotFoundError, match=rf"no pathway '{foreign}'"):
        act(store, task, Action.PROCEED, pathway=foreign)
    with pytest.raises(InvalidInputError, match=r"say which pathway to take from stage 'Triage': annotate, discard"):
        act(store, task, Action.PROCEED)
    # And the task did not move
    assert where(store, task) == ("Triage", S.NEW, None)
    assert store.events(pipeline.id, task.uuid) == []


def test_no_teleporting_proceed_only_in_agent_stages(store: Store, apples: ProjectRecord) -> None:
    # Given an annotation task and the UUID of the review's approve pathway (straight to Complete)
    task = act(store, task_of(store, apples, "a.jpg"), Action.ASSIGN, assignee=ANN)
    approve = store.workflow(apples.id).stage("Review 1").pathway("approve").uuid
    # When someone tries to move it along that pathway / Then it is refused
    with pytest.raises(TransitionNotAllowedError, match=r"'proceed' is not an action of annotation stage"):
        act(store, task, Action.PROCEED, pathway=approve, by=ADMIN)
    assert where(store, task) == ("Annotate 1", S.ASSIGNED, ANN)


def test_agent_task_in_the_sdk(store: Store, pipeline: ProjectRecord) -> None:
    # Given the pipeline's Triage stage in the SDK
    stage = Client(store).get_project("pipeline").workflow.get_stage(name="Triage", type_=AgentStage)
    # When each task proceeds along "discard"
    for task in stage.get_tasks():
        task.proceed("discard")
    # Then Triage is empty and Archive holds both, acted on by the agent
    archive = Client(store).get_project("pipeline").workflow.get_stage(name="Archive", type_=FinalStage)
    assert list(stage.get_tasks()) == []
    assert sorted((t.data_title, t.last_actioned_by) for t in archive.get_tasks()) == [
        ("p1.jpg", "agent:Triage"),
        ("p2.jpg", "agent:Triage"),
    ]


# ---------------------------------------------------------------------- reopen


def test_reopen_from_complete_goes_to_the_first_stage(store: Store, apples: ProjectRecord) -> None:
    # Given a task approved into Complete
    task = to_review(store, apples, "a.jpg")
    act(store, task, Action.APPROVE)
    # When the admin reopens it through the SDK
    client = Client(store, user=ADMIN)
    complete = client.get_project("apples").workflow.get_stage(name="Complete", type_=FinalStage)
    (final,) = complete.get_tasks()
    final.reopen()
    # Then it is REOPENED in Annotate 1
    assert where(store, task) == ("Annotate 1", S.REOPENED, None)
    assert store.events(apples.id, task.uuid)[-1].action == "reopen"


def test_reopen_from_archive(store: Store, pipeline: ProjectRecord) -> None:
    # Given a task discarded into Archive
    task = act(store, task_of(store, pipeline, "p1.jpg"), Action.PROCEED, pathway="discard")
    # When the admin reopens it
    act(store, task, Action.REOPEN, by=ADMIN)
    # Then it is back in the start stage Triage, REOPENED
    assert where(store, task) == ("Triage", S.REOPENED, None)


def test_reopen_refusals(store: Store, apples: ProjectRecord) -> None:
    # Given one task still in Annotate 1 and one in Complete
    open_task = task_of(store, apples, "b.jpg")
    done = to_review(store, apples, "a.jpg")
    act(store, done, Action.APPROVE)
    # When an open task is reopened / Then it is refused, saying which stage's actions apply
    with pytest.raises(TransitionNotAllowedError, match=r"'reopen' is not an action of annotation stage"):
        act(store, open_task, Action.REOPEN, by=ADMIN)
    # When a final task is assigned / Then only reopen is offered
    with pytest.raises(TransitionNotAllowedError, match=r"its actions are: reopen"):
        act(store, done, Action.ASSIGN, assignee=ANN)
    assert where(store, done) == ("Complete", S.COMPLETED, None)


# ------------------------------------------------------------------- snapshots


def test_stale_snapshot_is_a_conflict(store: Store, apples: ProjectRecord) -> None:
    # Given two SDK snapshots of the same task
    stage = Client(store).get_project("apples").workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    first = next(iter(stage.get_tasks(data_title="a.jpg")))
    second = next(iter(stage.get_tasks(data_title="a.jpg")))
    # When the first assigns it and the second then acts on its old view
    first.assign(ANN)
    # Then the second gets a conflict telling it to re-read, and the task is as the first left it
    with pytest.raises(ConflictError, match=r"changed since you read it.*read it again"):
        second.assign(REV)
    assert where(store, first.record) == ("Annotate 1", S.ASSIGNED, ANN)


def test_stale_lease_and_unknown_task(store: Store, apples: ProjectRecord) -> None:
    # Given a task without a lease
    task = task_of(store, apples, "a.jpg")
    # When a result arrives holding some other lease, or for a task that does not exist / Then both are refused
    with pytest.raises(ConflictError, match=r"no longer holds lease"):
        store.act(ActionRequest(task.uuid, Action.ASSIGN, assignee=ANN, lease_token="old"))
    with pytest.raises(NotFoundError, match=r"no task nope; list tasks with"):
        store.act(ActionRequest("nope", Action.ASSIGN, assignee=ANN))


def test_assign_needs_someone(store: Store, apples: ProjectRecord) -> None:
    # Given a NEW task / When assign names nobody / Then it asks for the email
    with pytest.raises(InvalidInputError, match=r"assign needs the email"):
        act(store, task_of(store, apples, "a.jpg"), Action.ASSIGN)


def test_stage_types_all_have_a_rule_or_are_routers() -> None:
    # Given every stage type / Then people or agents can act in it, or it is a router tasks pass through
    acted = {t for t, _ in TRANSITIONS}
    assert {t for t in StageType if not t.is_router} == acted
