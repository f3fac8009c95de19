"""The workflow seed's end-to-end example: five apples from Annotate 1 to Complete."""

from __future__ import annotations

from common.enums import Role, TaskStatus
from common.sdk import AnnotationStage, Client, FinalStage, ReviewStage
from common.store import Store
from common.workflow import Workflow
from tests.helpers import make_project

APPLES = [f"apples_0{i}.jpg" for i in range(1, 6)]


def test_five_apples_end_to_end(store: Store, seed_workflow: Workflow) -> None:
    # Given five data units in Annotate 1, four of them assigned already
    make_project(store, seed_workflow, APPLES, users={"chris@acme.com": Role.ADMIN, "ann@acme.com": Role.ANNOTATOR})
    client = Client(store, user="chris@acme.com")
    project = client.get_project("apples")
    annotate = project.workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    for task in annotate.get_tasks():
        if task.data_title != "apples_05.jpg":
            task.assign("ann@acme.com")
    assert sorted(t.status for t in annotate.get_tasks()) == [TaskStatus.ASSIGNED] * 4 + [TaskStatus.NEW]

    # When every task is assigned to the admin and submitted
    for task in annotate.get_tasks():
        task.assign("chris@acme.com")
        task.submit()

    # Then all five are in Review 1, unassigned
    review = project.workflow.get_stage(name="Review 1", type_=ReviewStage)
    in_review = list(review.get_tasks())
    assert len(in_review) == 5 and list(annotate.get_tasks()) == []
    assert all(t.assignee is None and t.status is TaskStatus.NEW for t in in_review)

    # When apples_05 is rejected
    apples_05 = next(t for t in in_review if t.data_title == "apples_05.jpg")
    (task,) = review.get_tasks(data_hash=[apples_05.data_hash])
    task.assign("chris@acme.com")
    task.reject()

    # Then it is back in Annotate 1, REOPENED
    (back,) = annotate.get_tasks()
    assert back.data_title == "apples_05.jpg" and back.status is TaskStatus.REOPENED

    # When the other four are approved, filtered by data hash
    others = [t.data_hash for t in in_review if t.data_title != "apples_05.jpg"]
    for task in review.get_tasks(data_hash=others):
        task.assign("chris@acme.com")
        task.approve()

    # Then apples_01..04 are COMPLETED in Complete
    complete = project.workflow.get_stage(name="Complete", type_=FinalStage)
    done = sorted(t.data_title for t in complete.get_tasks())
    assert done == APPLES[:4]
    assert all(t.status is TaskStatus.COMPLETED for t in complete.get_tasks())
    # And the history holds each move
    history = store.events(project.uuid, apples_05.uuid)
    assert [e.action for e in history] == ["assign", "submit", "assign", "reject"]
