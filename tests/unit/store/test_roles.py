"""Role rules (who may submit, approve, reject, reopen, or act for someone) and certifications."""

from __future__ import annotations

from typing import Any

import pytest

from common.enums import ANNOTATING_ROLES, REVIEWING_ROLES, Action, Role, TaskStatus
from common.errors import ForbiddenError, InvalidInputError
from common.sdk import AnnotationStage, Client
from common.store import ActionRequest, ProjectRecord, Store, TaskRecord
from common.workflow import Workflow, load_workflow
from tests.conftest import FIXTURES
from tests.helpers import make_project

# One user per role, plus someone with no role on the project.
PEOPLE = {f"{r.value}@acme.com": r for r in Role}
STRANGER = "stranger@acme.com"
ANNOTATING = ["annotator", "annotator_reviewer", "team_manager", "admin"]
REVIEWING = ["reviewer", "annotator_reviewer", "team_manager", "admin"]


@pytest.fixture
def apples(store: Store, seed_workflow: Workflow) -> ProjectRecord:
    project = make_project(store, seed_workflow, ["a.jpg", "b.jpg"], users=PEOPLE)
    store.add_user(STRANGER)
    return project


def first_task(store: Store, project: ProjectRecord) -> TaskRecord:
    return next(iter(store.iter_tasks(project.id, filters={"data_title": "a.jpg"})))


def act(store: Store, task: TaskRecord, action: Action, **kw: Any) -> TaskRecord:
    return store.act(ActionRequest(task.uuid, action, **kw))


def in_review(store: Store, project: ProjectRecord) -> TaskRecord:
    task = act(store, first_task(store, project), Action.ASSIGN, assignee="annotator@acme.com")
    return act(store, task, Action.SUBMIT)


def test_roles_and_their_sets_match_the_seed() -> None:
    # Given the seed's role lists / Then the enums say the same
    assert sorted(r.value for r in ANNOTATING_ROLES) == sorted(ANNOTATING)
    assert sorted(r.value for r in REVIEWING_ROLES) == sorted(REVIEWING)


def test_annotation_submit_by_role(store: Store, seed_workflow: Workflow) -> None:
    # Given one task per role, and a user of each role
    project = make_project(store, seed_workflow, [f"{r.value}.jpg" for r in Role], name="roles", users=PEOPLE)
    for task in store.iter_tasks(project.id):
        user = f"{task.data_title.removesuffix('.jpg')}@acme.com"
        if user.split("@")[0] not in ANNOTATING:
            # Then a non-annotating role cannot even take an annotation task
            with pytest.raises(ForbiddenError, match=rf"{user} cannot assign in annotation stage 'Annotate 1'"):
                act(store, task, Action.ASSIGN, assignee=user)
            continue
        # When each annotating role takes its task and submits it
        act(store, task, Action.ASSIGN, assignee=user)
        moved = act(store, task, Action.SUBMIT)
        # Then it reaches review
        assert moved.status is TaskStatus.NEW and moved.stage_uuid != task.stage_uuid, user


def test_review_approve_and_reject_by_role(store: Store, seed_workflow: Workflow) -> None:
    # Given one task in review per role
    project = make_project(store, seed_workflow, [f"{r.value}.jpg" for r in Role], name="roles", users=PEOPLE)
    for task in store.iter_tasks(project.id):
        user = f"{task.data_title.removesuffix('.jpg')}@acme.com"
        act(store, task, Action.ASSIGN, assignee="annotator@acme.com")
        act(store, task, Action.SUBMIT)
        if user.split("@")[0] not in REVIEWING:
            # Then a non-reviewing role cannot be assigned, and the message lists the roles it needs
            with pytest.raises(
                ForbiddenError, match=r"needs one of: admin, annotator_reviewer, reviewer, team_manager"
            ):
                act(store, task, Action.ASSIGN, assignee=user)
            continue
        # When each reviewing role takes it and rejects it, then takes it again and approves it
        act(store, task, Action.ASSIGN, assignee=user)
        assert act(store, task, Action.REJECT).status is TaskStatus.REOPENED
        act(store, task, Action.ASSIGN, assignee="annotator@acme.com")
        act(store, task, Action.SUBMIT)
        act(store, task, Action.ASSIGN, assignee=user)
        # Then both work for every reviewing role
        assert act(store, task, Action.APPROVE).status is TaskStatus.COMPLETED, user


def test_submit_on_behalf_by_a_manager(store: Store, apples: ProjectRecord) -> None:
    # Given a task held by the annotator
    task = act(store, first_task(store, apples), Action.ASSIGN, assignee="annotator@acme.com")
    # When the team manager submits it on their behalf
    moved = act(store, task, Action.SUBMIT, by="team_manager@acme.com")
    # Then it moves and the history names who acted
    assert moved.status is TaskStatus.NEW
    assert store.events(apples.id, task.uuid)[-1].actor == "team_manager@acme.com"


def test_submit_for_someone_else_needs_a_manager(store: Store, apples: ProjectRecord) -> None:
    # Given a task held by the annotator
    task = act(store, first_task(store, apples), Action.ASSIGN, assignee="annotator@acme.com")
    # When another annotator, a reviewer or a stranger submits or releases it for them / Then each is refused
    with pytest.raises(ForbiddenError, match=r"only the assignee, a team_manager or an admin can"):
        act(store, task, Action.SUBMIT, by="annotator_reviewer@acme.com")
    with pytest.raises(ForbiddenError, match=r"reviewer@acme.com cannot submit in annotation stage"):
        act(store, task, Action.SUBMIT, by="reviewer@acme.com")
    with pytest.raises(ForbiddenError, match=r"they have no role on this project"):
        act(store, task, Action.SUBMIT, by=STRANGER)
    with pytest.raises(ForbiddenError, match=r"cannot release work that annotator@acme.com holds"):
        act(store, task, Action.RELEASE, by="annotator_reviewer@acme.com")
    # And the task is still held by the annotator
    assert store.get_task(task.uuid).assignee == "annotator@acme.com"


def test_submit_on_behalf_of_someone_who_lost_the_role(store: Store, apples: ProjectRecord) -> None:
    # Given a task held by a user who has since become a reviewer
    task = act(store, first_task(store, apples), Action.ASSIGN, assignee="annotator@acme.com")
    store.set_role(apples.id, "annotator@acme.com", Role.REVIEWER)
    # When they submit it, or the admin submits it for them / Then both are refused
    with pytest.raises(ForbiddenError, match=r"annotator@acme.com cannot submit in annotation stage"):
        act(store, task, Action.SUBMIT)
    with pytest.raises(ForbiddenError, match=r"annotator@acme.com cannot be the user admin@acme.com acts for"):
        act(store, task, Action.SUBMIT, by="admin@acme.com")


def test_reopen_needs_a_manager(store: Store, apples: ProjectRecord) -> None:
    # Given a completed task
    task = in_review(store, apples)
    act(store, task, Action.ASSIGN, assignee="reviewer@acme.com")
    act(store, task, Action.APPROVE)
    # When the annotator tries to reopen it / Then it is refused; the team manager may
    with pytest.raises(ForbiddenError, match=r"cannot reopen in complete stage 'Complete'"):
        act(store, task, Action.REOPEN, by="annotator@acme.com")
    with pytest.raises(InvalidInputError, match=r"reopen needs the acting user"):
        act(store, task, Action.REOPEN)
    assert act(store, task, Action.REOPEN, by="team_manager@acme.com").status is TaskStatus.REOPENED


def test_skip_needs_an_annotating_role(store: Store, apples: ProjectRecord) -> None:
    # Given a NEW task / When a reviewer skips it / Then it is refused, naming the roles that may
    with pytest.raises(ForbiddenError, match=r"reviewer@acme.com cannot skip"):
        act(store, first_task(store, apples), Action.SKIP, by="reviewer@acme.com")


def test_sdk_submit_as_the_assignee(store: Store, apples: ProjectRecord) -> None:
    # Given the SDK, as the admin, assigning the annotator
    client = Client(store, user="admin@acme.com")
    stage = client.get_project("apples").workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    (task,) = stage.get_tasks(data_title="a.jpg")
    task.assign("annotator@acme.com")
    # When it is submitted without naming anyone, and the second task for the annotator by the admin
    task.submit()
    (other,) = stage.get_tasks(data_title="b.jpg")
    other.assign("annotator@acme.com").submit(by="admin@acme.com")
    # Then both moved on
    assert list(stage.get_tasks()) == []


# -------------------------------------------------------------- certifications


def test_assign_without_certifications_names_the_missing_ones(store: Store) -> None:
    # Given a task in a stage that needs the medical and polygons certifications, and an annotator with one
    wf = load_workflow(FIXTURES / "pipeline.yaml")
    project = make_project(store, wf, [f"p{i}.jpg" for i in range(12)], name="pipeline", users=PEOPLE)
    for task in store.iter_tasks(project.id):
        store.act(ActionRequest(task.uuid, Action.PROCEED, pathway="annotate"))
    careful = next(iter(store.iter_tasks(project.id, wf.stage("Annotate careful").uuid)))
    store.certify("annotator@acme.com", "polygons")
    # When the annotator is assigned / Then it is refused naming the missing certification and the fix
    with pytest.raises(ForbiddenError, match=r"missing certification\(s\) medical; grant them with"):
        store.assign(careful.uuid, "annotator@acme.com")
    with pytest.raises(ForbiddenError, match=r"missing certification\(s\) medical, polygons"):
        store.assign(careful.uuid, "admin@acme.com")
    # When they earn the missing one / Then the assignment goes through
    store.certify("annotator@acme.com", "medical")
    assert store.assign(careful.uuid, "annotator@acme.com").assignee == "annotator@acme.com"
    assert ("medical", "polygons") in [u.certifications for u in store.list_users(project.id)]


def test_stage_without_certifications_takes_anyone_with_the_role(store: Store) -> None:
    # Given a task in "Annotate fast", which needs no certification
    wf = load_workflow(FIXTURES / "pipeline.yaml")
    project = make_project(store, wf, [f"p{i}.jpg" for i in range(12)], name="pipeline", users=PEOPLE)
    for task in store.iter_tasks(project.id):
        store.act(ActionRequest(task.uuid, Action.PROCEED, pathway="annotate"))
    fast = next(iter(store.iter_tasks(project.id, wf.stage("Annotate fast").uuid)))
    # When an uncertified annotator is assigned / Then it works
    assert store.assign(fast.uuid, "annotator@acme.com").status is TaskStatus.ASSIGNED


def test_unknown_role_lists_the_roles(store: Store, apples: ProjectRecord) -> None:
    # Given a misspelt role / When it is granted / Then the roles are listed
    with pytest.raises(InvalidInputError, match=r"unknown role 'manager'; roles: annotator, reviewer"):
        store.set_role(apples.id, "x@acme.com", "manager")
    with pytest.raises(InvalidInputError, match=r"is not an email address"):
        store.add_user("not-an-email")
