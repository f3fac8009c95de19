"""Consensus: one subtask per annotator, the move to consensus review, options, approve by branch, reject."""

from __future__ import annotations

import pytest

from common.enums import Action, Role, TaskStatus
from common.errors import ForbiddenError, InvalidInputError, NotFoundError, TransitionNotAllowedError
from common.sdk import Client, ConsensusAnnotationStage, ConsensusReviewStage, FinalStage
from common.store import ActionRequest, LabelRow, ProjectRecord, Store, TaskRecord
from common.workflow import Workflow
from tests.helpers import make_project

ANN, BOB, REV, ADMIN = "ann@acme.com", "bob@acme.com", "rev@acme.com", "admin@acme.com"
USERS = {ANN: Role.ANNOTATOR, BOB: Role.ANNOTATOR, REV: Role.REVIEWER, ADMIN: Role.ADMIN}
S = TaskStatus


@pytest.fixture
def project(store: Store, consensus_workflow: Workflow) -> ProjectRecord:
    return make_project(store, consensus_workflow, ["apple.jpg"], name="consensus", users=USERS)


def the_task(store: Store, project: ProjectRecord) -> TaskRecord:
    (task,) = store.iter_tasks(project.id)
    return store.get_task(task.uuid)


def stage_of(store: Store, task: TaskRecord) -> str:
    fresh = store.get_task(task.uuid)
    return store.workflow(fresh.project_id).stages[fresh.stage_uuid].title


def label(store: Store, project: ProjectRecord, task: TaskRecord, branch: str, name: str) -> None:
    row = store.get_label_row(project.id, task.data_hash, branch)
    store.save_label_row(row.model_copy(update={"objects": [{"name": name}]}))


def annotate_both(store: Store, project: ProjectRecord) -> TaskRecord:
    """Ann labels branch 1 "apple", bob labels branch 2 "pear", both submit."""
    task = the_task(store, project)
    one, two = store.subtasks(task.uuid)
    for sub, who, name in ((one, ANN, "apple"), (two, BOB, "pear")):
        store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=sub.uuid, assignee=who))
        label(store, project, task, sub.label_branch, name)
    for sub in (one, two):
        store.act(ActionRequest(task.uuid, Action.SUBMIT, subtask=sub.uuid))
    return store.get_task(task.uuid)


def test_import_creates_one_subtask_per_annotator(store: Store, project: ProjectRecord) -> None:
    # Given a consensus stage with two annotators / When a data unit is imported
    task = the_task(store, project)
    subs = store.subtasks(task.uuid)
    # Then the task has two NEW subtasks, each on its own label branch
    assert [(s.label_branch, s.status, s.assignee) for s in subs] == [
        ("consensus-1", S.NEW, None),
        ("consensus-2", S.NEW, None),
    ]
    assert task.status is S.NEW and task.label_branch == "main"


def test_the_parent_task_cannot_be_acted_on_itself(store: Store, project: ProjectRecord) -> None:
    # Given the consensus task / When it is assigned or submitted itself / Then it is refused, pointing at subtasks
    task = the_task(store, project)
    with pytest.raises(TransitionNotAllowedError, match=r"cannot assign consensus annotation task .* itself"):
        store.assign(task.uuid, ANN)
    with pytest.raises(TransitionNotAllowedError, match="submit one of its subtasks instead"):
        store.act(ActionRequest(task.uuid, Action.SUBMIT, by=ANN))
    with pytest.raises(NotFoundError, match="has no subtask nope"):
        store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask="nope", assignee=ANN))


def test_one_subtask_per_annotator(store: Store, project: ProjectRecord) -> None:
    # Given ann holds the first subtask
    task = the_task(store, project)
    one, two = store.subtasks(task.uuid)
    store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=one.uuid, assignee=ANN))
    # When ann is assigned the second as well / Then it is refused
    with pytest.raises(TransitionNotAllowedError, match=r"ann@acme.com already holds a subtask"):
        store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=two.uuid, assignee=ANN))
    # And a reviewer cannot take a subtask either, but bob can
    with pytest.raises(ForbiddenError, match=r"rev@acme.com cannot assign"):
        store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=two.uuid, assignee=REV))
    store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=two.uuid, assignee=BOB))
    assert [s.assignee for s in store.subtasks(task.uuid)] == [ANN, BOB]


def test_subtask_release_and_reassign(store: Store, project: ProjectRecord) -> None:
    # Given ann holds a subtask
    task = the_task(store, project)
    one, _ = store.subtasks(task.uuid)
    store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=one.uuid, assignee=ANN))
    # When ann releases it
    store.act(ActionRequest(task.uuid, Action.RELEASE, subtask=one.uuid))
    # Then it is RELEASED and free; bob may take it
    first = store.subtasks(task.uuid)[0]
    assert (first.status, first.assignee) == (S.RELEASED, None)
    store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=one.uuid, assignee=BOB))
    assert store.subtasks(task.uuid)[0].assignee == BOB


def test_moves_to_consensus_review_when_all_subtasks_are_submitted(store: Store, project: ProjectRecord) -> None:
    # Given both subtasks assigned
    task = the_task(store, project)
    one, two = store.subtasks(task.uuid)
    store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=one.uuid, assignee=ANN))
    store.act(ActionRequest(task.uuid, Action.ASSIGN, subtask=two.uuid, assignee=BOB))
    # When the first is submitted / Then the task waits in Consensus 1
    store.act(ActionRequest(task.uuid, Action.SUBMIT, subtask=one.uuid))
    assert stage_of(store, task) == "Consensus 1"
    assert [s.status for s in store.subtasks(task.uuid)] == [S.COMPLETED, S.ASSIGNED]
    with pytest.raises(TransitionNotAllowedError, match="cannot submit a COMPLETED task"):
        store.act(ActionRequest(task.uuid, Action.SUBMIT, subtask=one.uuid))
    # When the second is submitted / Then the task is NEW in Consensus 1 Review
    store.act(ActionRequest(task.uuid, Action.SUBMIT, subtask=two.uuid))
    assert stage_of(store, task) == "Consensus 1 Review"
    assert store.get_task(task.uuid).status is S.NEW
    moves = [e for e in store.events(project.id, task.uuid) if e.from_stage != e.to_stage]
    assert [(e.action, e.to_status) for e in moves] == [("submit", "NEW")]


def test_options_one_per_branch_and_approve_picks_the_main_labels(store: Store, project: ProjectRecord) -> None:
    # Given both annotators labelled and submitted
    annotate_both(store, project)
    client = Client(store, user=ADMIN)
    review = client.get_project("consensus").workflow.get_stage(name="Consensus 1 Review", type_=ConsensusReviewStage)
    (task,) = review.get_tasks()
    # When the reviewer looks at the options
    options = task.options
    # Then there is one per branch, with its annotator and labels
    assert [(o.label_branch, o.annotator, o.label_row.objects) for o in options] == [
        ("consensus-1", ANN, [{"name": "apple"}]),
        ("consensus-2", BOB, [{"name": "pear"}]),
    ]
    # When the reviewer approves bob's branch (named by annotator)
    task.assign(REV)
    task.approve(branch=BOB)
    # Then the task is complete and its main labels are bob's
    assert stage_of(store, task.record) == "Complete"
    main = store.get_label_row(project.id, task.data_hash)
    assert main.objects == [{"name": "pear"}] and main.version == 1


def test_approve_needs_a_known_branch(store: Store, project: ProjectRecord) -> None:
    # Given a task in consensus review that rev holds
    task = annotate_both(store, project)
    store.assign(task.uuid, REV)
    # When approved without a branch or with an unknown one / Then the options are listed
    with pytest.raises(InvalidInputError, match=r"needs the winning branch; options: consensus-1 \(ann@acme.com\)"):
        store.act(ActionRequest(task.uuid, Action.APPROVE))
    with pytest.raises(NotFoundError, match="has no option 'consensus-9'; options: consensus-1"):
        store.act(ActionRequest(task.uuid, Action.APPROVE, branch="consensus-9"))
    # And approving by branch name works
    store.act(ActionRequest(task.uuid, Action.APPROVE, branch="consensus-1"))
    assert store.get_label_row(project.id, task.data_hash).objects == [{"name": "apple"}]


def test_reject_sends_back_reopened_with_fresh_subtasks(store: Store, project: ProjectRecord) -> None:
    # Given a task in consensus review
    task = annotate_both(store, project)
    before = {s.uuid for s in store.subtasks(task.uuid)}
    client = Client(store)
    review = client.get_project("consensus").workflow.get_stage(name="Consensus 1 Review", type_=ConsensusReviewStage)
    (in_review,) = review.get_tasks()
    # When the reviewer rejects it
    in_review.assign(REV).release()
    (in_review,) = review.get_tasks(status="RELEASED")
    in_review.assign(REV)
    in_review.reject()
    # Then it is REOPENED in Consensus 1 with a fresh, unassigned subtask per annotator
    assert stage_of(store, task) == "Consensus 1"
    assert store.get_task(task.uuid).status is S.REOPENED
    fresh = store.subtasks(task.uuid)
    assert len(fresh) == 2 and not before & {s.uuid for s in fresh}
    assert all(s.assignee is None and s.status is S.REOPENED for s in fresh)
    # And the SDK sees them and can start the next round
    stage = client.get_project("consensus").workflow.get_stage(name="Consensus 1", type_=ConsensusAnnotationStage)
    (again,) = stage.get_tasks()
    first = again.subtasks[0].assign(BOB)
    assert first.assignee == BOB and first.status is S.ASSIGNED


def test_reopen_is_refused_in_consensus_projects(store: Store, project: ProjectRecord) -> None:
    # Given a consensus task approved into Complete
    task = annotate_both(store, project)
    store.assign(task.uuid, REV)
    store.act(ActionRequest(task.uuid, Action.APPROVE, branch="consensus-2"))
    complete = Client(store, user=ADMIN).get_project("consensus").workflow.get_stage(name="Complete", type_=FinalStage)
    (done,) = complete.get_tasks()
    # When the admin reopens it / Then it is refused, as the seed says
    with pytest.raises(TransitionNotAllowedError, match="consensus project; such tasks cannot be reopened"):
        done.reopen()
    assert stage_of(store, task) == "Complete"


def test_sdk_subtasks_flow(store: Store, project: ProjectRecord) -> None:
    # Given the consensus stage in the SDK
    stage = (
        Client(store).get_project("consensus").workflow.get_stage(name="Consensus 1", type_=ConsensusAnnotationStage)
    )
    (task,) = stage.get_tasks()
    # When each annotator takes and submits a subtask
    for sub, who in zip(task.subtasks, (ANN, BOB), strict=True):
        sub.assign(who)
        assert sub.status is S.ASSIGNED
        sub.submit()
    # Then the stage is empty and the task waits for the reviewer
    assert list(stage.get_tasks()) == []
    assert stage_of(store, task.record) == "Consensus 1 Review"
    assert isinstance(store.get_label_row(project.id, task.data_hash), LabelRow)
