"""Versions: content-hash dedup, delta storage, restore as a new project or in place, diff, project@version."""

from __future__ import annotations

import pytest
from sqlalchemy import Table, func, select

from common.enums import Action, Role, TaskStatus
from common.errors import InvalidInputError, NotFoundError
from common.lineage import NodeKind, lineage_graph, record_run_lineage
from common.store import ActionRequest, LabelRow, ProjectRecord, Store
from common.store.schema import label_blobs, version_labels, version_tasks
from common.versions import create_version, diff_versions, list_versions, resolve_input, restore_version
from common.workflow import Workflow
from tests.helpers import make_project

APPLES = [f"apples_0{i}.jpg" for i in range(1, 6)]
ADMIN = "chris@acme.com"


def _label(store: Store, project: ProjectRecord, data_hash: str, objects: list[dict[str, object]]) -> None:
    row = store.get_label_row(project.id, data_hash)
    store.save_label_row(row.model_copy(update={"objects": objects}))


def _labelled_project(store: Store, wf: Workflow) -> ProjectRecord:
    project = make_project(store, wf, APPLES, users={ADMIN: Role.ADMIN})
    for t in store.iter_tasks(project.id):
        _label(store, project, t.data_hash, [{"objectHash": "a", "name": "apple", "box": [1, 2, 3, 4]}])
    return project


def _submit(store: Store, task_uuid: str) -> None:
    store.act(ActionRequest(task_uuid, Action.ASSIGN, assignee=ADMIN, by=ADMIN))
    store.act(ActionRequest(task_uuid, Action.SUBMIT, by=ADMIN))


def _count(store: Store, table: Table) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def test_unchanged_project_returns_the_existing_version(store: Store, seed_workflow: Workflow) -> None:
    # Given a labelled project with version 1
    project = _labelled_project(store, seed_workflow)
    v1, created = create_version(store, "apples", title="baseline", description="before training")
    assert created and (v1.number, v1.task_count, v1.label_row_count) == (1, 5, 5)

    # When a version is asked for again with nothing changed
    again, created_again = create_version(store, "apples", title="again")

    # Then version 1 comes back and no second version exists
    assert not created_again and again.id == v1.id
    assert [v.number for v in list_versions(store, "apples")] == [1]
    # And one change makes a new version whose content hash differs
    _submit(store, next(store.iter_tasks(project.id)).uuid)
    v2, created2 = create_version(store, "apples")
    assert created2 and v2.number == 2 and v2.content_hash != v1.content_hash


def test_versions_store_deltas_and_share_label_blobs(store: Store, seed_workflow: Workflow) -> None:
    # Given version 1 of five labelled tasks (all with the same objects)
    project = _labelled_project(store, seed_workflow)
    create_version(store, "apples")
    assert (_count(store, version_tasks), _count(store, version_labels), _count(store, label_blobs)) == (5, 5, 1)

    # When one task moves and one label row changes, and version 2 is saved
    first, second = list(store.iter_tasks(project.id))[:2]
    _submit(store, first.uuid)
    _label(store, project, second.data_hash, [{"objectHash": "a", "name": "apple", "box": [9, 9, 9, 9]}])
    create_version(store, "apples")

    # Then version 2 stored one task entry, one label entry and one new blob; the rest are shared
    assert (_count(store, version_tasks), _count(store, version_labels), _count(store, label_blobs)) == (6, 6, 2)


def test_restore_creates_a_new_project_with_the_versions_state(store: Store, seed_workflow: Workflow) -> None:
    # Given version 1, then a task submitted to Review and a label edited
    project = _labelled_project(store, seed_workflow)
    create_version(store, "apples")
    first, second = list(store.iter_tasks(project.id))[:2]
    _submit(store, first.uuid)
    _label(store, project, second.data_hash, [])

    # When version 1 is restored (as a new project, by default)
    result = restore_version(store, "apples", 1, as_name="apples-baseline")

    # Then the new project has the same workflow, data units, stages, statuses, labels and members
    restored = store.get_project("apples-baseline")
    assert result.project_id == restored.id and not result.in_place and result.tasks_restored == 5
    assert store.workflow(restored.id).to_dict() == store.workflow(project.id).to_dict()
    tasks = {t.data_hash: t for t in store.iter_tasks(restored.id)}
    assert set(tasks) == {t.data_hash for t in store.iter_tasks(project.id)}
    annotate = seed_workflow.stage("Annotate 1").uuid
    assert all(t.stage_uuid == annotate and t.status is TaskStatus.NEW for t in tasks.values())
    assert store.get_label_row(restored.id, second.data_hash).objects[0]["box"] == [1, 2, 3, 4]
    assert [u.email for u in store.list_users(restored.id)] == [ADMIN]
    # And the source project is untouched
    assert store.get_task(first.uuid).status is TaskStatus.NEW and store.get_task(first.uuid).stage_uuid != annotate
    # And the history and the lineage record the restore
    history = store.events(restored.id, tasks[first.data_hash].uuid)
    assert [(e.action, e.run_id, (e.detail or {}).get("version")) for e in history] == [("restore", result.run_id, 1)]
    graph = lineage_graph(store, "project", project="apples-baseline")
    run = graph.find(NodeKind.RUN, result.run_id)
    version = graph.find(NodeKind.PROJECT_VERSION, f"{project.id}@1")
    target = graph.find(NodeKind.PROJECT, restored.id)
    assert run and version and target
    edges = {(e.source, e.target) for e in graph.edges}
    assert {(version.id, run.id), (run.id, target.id)} <= edges
    # And the name must be free
    with pytest.raises(InvalidInputError, match="exists already"):
        restore_version(store, "apples", 1, as_name="apples-baseline")


def test_restore_in_place_sets_the_project_back(store: Store, seed_workflow: Workflow) -> None:
    # Given version 1, then a submitted task, an edited label and a label on a new branch
    project = _labelled_project(store, seed_workflow)
    v1, _ = create_version(store, "apples")
    first, second = list(store.iter_tasks(project.id))[:2]
    _submit(store, first.uuid)
    _label(store, project, second.data_hash, [{"objectHash": "b"}])
    store.save_label_row(
        LabelRow(project_id=project.id, data_hash=second.data_hash, branch="extra", objects=[], version=0)
    )

    # When version 1 is restored in place
    result = restore_version(store, "apples", 1, in_place=True)

    # Then only what differed was set back, and the project's content equals version 1 again
    assert result.in_place and (result.tasks_restored, result.labels_restored, result.labels_removed) == (1, 1, 1)
    moved_back = store.get_task(first.uuid)
    assert moved_back.stage_uuid == seed_workflow.stage("Annotate 1").uuid and moved_back.status is TaskStatus.NEW
    assert store.get_label_row(project.id, second.data_hash).objects[0]["objectHash"] == "a"
    assert store.get_label_row(project.id, second.data_hash, "extra").version == 0
    assert create_version(store, "apples") == (v1, False)
    # And the move back is in the task's history
    assert [e.action for e in store.events(project.id, first.uuid)] == ["assign", "submit", "restore"]


def test_diff_counts_objects_and_lists_stage_changes(store: Store, seed_workflow: Workflow) -> None:
    # Given version 1, then one object changed, one added, one removed elsewhere, and a task submitted
    project = _labelled_project(store, seed_workflow)
    create_version(store, "apples")
    t1, t2, t3 = list(store.iter_tasks(project.id))[:3]
    _label(
        store, project, t1.data_hash, [{"objectHash": "a", "name": "apple", "box": [0, 0, 1, 1]}, {"objectHash": "n"}]
    )
    _label(store, project, t2.data_hash, [])
    _submit(store, t3.uuid)
    create_version(store, "apples")

    # When versions 1 and 2 are compared
    d = diff_versions(store, "apples", 1, 2)

    # Then the objects and the stage move are counted
    assert (d.objects_added, d.objects_changed, d.objects_removed, d.label_rows_changed) == (1, 1, 1, 2)
    assert d.stage_changes_total == 1
    (change,) = d.stage_changes
    assert (change.data_title, change.stage_a, change.stage_b) == (t3.data_title, "Annotate 1", "Review 1")
    # And the other way round the counts swap
    back = diff_versions(store, "apples", 2, 1)
    assert (back.objects_added, back.objects_removed) == (1, 1)


def test_a_version_is_a_run_input(store: Store, seed_workflow: Workflow) -> None:
    # Given version 1 and a later change
    project = _labelled_project(store, seed_workflow)
    create_version(store, "apples")
    first = next(store.iter_tasks(project.id))
    _label(store, project, first.data_hash, [])

    # When a run names apples@1 as its input
    source = resolve_input(store, "apples@1")
    run = store.create_run(project.id, "app", "train", {"input": "apples@1"})
    assert record_run_lineage(store, run.id, inputs=[source.ref], outputs=["model:/w/apples.pt"])

    # Then it reads the data as it was in version 1, and the lineage shows the version as the input
    labels = {d: objects for d, _, objects in source.iter_labels(store)}
    assert len(labels) == 5 and labels[first.data_hash][0]["objectHash"] == "a"
    assert len(list(source.iter_tasks(store))) == 5
    assert resolve_input(store, "apples@latest").version == source.version
    assert resolve_input(store, "apples").version is None
    graph = lineage_graph(store, "project", project="apples")
    version = graph.find(NodeKind.PROJECT_VERSION, f"{project.id}@1")
    assert version is not None and version.title == "apples v1"
    # And a missing version is a clear error
    with pytest.raises(NotFoundError, match="no version 7"):
        resolve_input(store, "apples@7")
    with pytest.raises(InvalidInputError, match="PROJECT@N"):
        resolve_input(store, "apples@seven")
