"""Lineage: the recording API, its display settings, failures that never break a run, and scopes."""

from __future__ import annotations

import logging

import pytest

from common.enums import Action, Role
from common.lineage import Lineage, LineageMeta, NodeKind, NodeSettings, Ref, lineage_graph, record_run_lineage
from common.store import ActionRequest, Store
from common.versions import create_version
from common.workflow import Workflow
from tests.helpers import make_project

APPLES = [f"apples_0{i}.jpg" for i in range(1, 4)]


def test_every_add_method_records_its_node_kind(store: Store, seed_workflow: Workflow) -> None:
    # Given a project with a saved version, and a user's own application run
    project = make_project(store, seed_workflow, APPLES)
    create_version(store, "apples")
    task = next(store.iter_tasks(project.id))
    lineage = Lineage(store, project="apples", name="train detector")

    # When the application marks every kind of input and output
    results = [
        lineage.add_input_project("apples"),
        lineage.add_input_project("apples", version=1),
        lineage.add_input_dataset("fruit"),
        lineage.add_input_file("/models/base.pt", model_weight=True),
        lineage.add_input_folder("/data/extra/"),
        lineage.add_input_task(task.uuid),
        lineage.add_input_job("job-42"),
        lineage.add_output_project("apples", version=1),
        lineage.add_output_file("/models/trained.pt", model_weight=True),
        lineage.add_output_file("/exports/apples.zip"),
        lineage.add_output_task(task.uuid),
        lineage.add_output_job("review-7"),
        lineage.add_output_app(),
    ]

    # Then each is recorded, connected to the run in the right direction
    assert all(results)
    graph = lineage_graph(store, "workspace", collapse_tasks=0)
    run = graph.find(NodeKind.RUN, lineage.run_id)
    assert run is not None and run.title == "train detector"
    inputs = {(graph.node(e.source).kind, graph.node(e.source).title) for e in graph.edges if e.target == run.id}
    outputs = {(graph.node(e.target).kind, graph.node(e.target).title) for e in graph.edges if e.source == run.id}
    assert inputs == {
        (NodeKind.PROJECT, "apples"),
        (NodeKind.PROJECT_VERSION, "apples v1"),
        (NodeKind.DATASET, "fruit"),
        (NodeKind.FILE, "base.pt"),
        (NodeKind.FOLDER, "extra"),
        (NodeKind.TASK, task.data_title),
        (NodeKind.JOB, "job-42"),
    }
    assert outputs == {
        (NodeKind.PROJECT_VERSION, "apples v1"),
        (NodeKind.FILE, "trained.pt"),
        (NodeKind.FILE, "apples.zip"),
        (NodeKind.TASK, task.data_title),
        (NodeKind.JOB, "review-7"),
        (NodeKind.APP, "train detector session"),
    }
    weights = graph.find(NodeKind.FILE, "/models/trained.pt")
    assert weights is not None and weights.attrs["model_weight"] is True and weights.subtitle == "model weights"


def test_display_settings_for_card_and_main_node(store: Store, seed_workflow: Workflow) -> None:
    # Given a run
    make_project(store, seed_workflow, APPLES)
    run = store.create_run(None, "app", "export", {})
    card = NodeSettings(
        title="Project archive",
        icon="archive",
        icon_color="#ff4c9e",
        icon_bg_color="#ffe3ed",
        url="/files/7",
        url_title="Download",
    )

    # When two outputs set the main node's settings, the second one last
    first = LineageMeta(relation_settings=card, node_settings=NodeSettings(title="Export v1"))
    second = LineageMeta(node_settings=NodeSettings(title="Export v2", description="COCO"))
    assert record_run_lineage(store, run.id, outputs=["file:/exports/a.zip"], meta=first)
    assert record_run_lineage(store, run.id, outputs=["file:/exports/b.zip"], meta=second.model_dump())

    # Then the card carries every setting and the main node the last one (merged)
    graph = lineage_graph(store, "workspace")
    archive = graph.find(NodeKind.FILE, "/exports/a.zip")
    assert archive is not None and archive.settings == card.set_fields()
    main = graph.find(NodeKind.RUN, run.id)
    assert main is not None and main.title == "Export v2" and main.subtitle == "COCO"


def test_recording_failures_are_logged_and_never_raise(
    store: Store, seed_workflow: Workflow, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a project and a run
    make_project(store, seed_workflow, APPLES)
    run = store.create_run(None, "totask", "pre-annotate", {})
    caplog.set_level(logging.WARNING, logger="annoflow.lineage")

    # When lineage names an unknown run, an unknown project, a bad kind, bad settings, a missing version
    outcomes = [
        record_run_lineage(store, "no-such-run", inputs=["apples"]),
        record_run_lineage(store, run.id, inputs=["pears"]),
        record_run_lineage(store, run.id, inputs=["weights:/w.pt"]),
        Lineage(store, run.id).add_input_file("/a", meta={"relation_settings": {"url": "no-slash"}}),
        Lineage(store, run.id).add_input_project("apples", version=9),
        Lineage(store, project="pears").add_output_app(),
    ]

    # Then every call returned False, logged why, and left nothing half-recorded
    assert outcomes == [False] * 6
    assert len(caplog.records) == 6 and all("not recorded" in r.getMessage() for r in caplog.records)
    assert "no run 'no-such-run'" in caplog.records[0].getMessage()
    assert lineage_graph(store, "workspace").nodes == []


def test_scopes_filter_nodes_but_keep_the_history_of_connections(store: Store, seed_workflow: Workflow) -> None:
    # Given apples -> [pre-annotate] -> apples, a model trained from apples by another run,
    # a project "pears" whose run used that model, and an unrelated project "plums"
    apples = make_project(store, seed_workflow, APPLES, name="apples")
    pears = make_project(store, seed_workflow, ["pear.jpg"], name="pears")
    plums = make_project(store, seed_workflow, ["plum.jpg"], name="plums")
    t1, t2, t3 = (t.uuid for t in store.iter_tasks(apples.id))
    train = store.create_run(apples.id, "app", "train", {})
    pre = store.create_run(apples.id, "totask", "pre-annotate", {})
    infer = store.create_run(pears.id, "totask", "pears inference", {})
    other = store.create_run(plums.id, "app", "plums export", {})
    assert record_run_lineage(store, train.id, inputs=["apples"], outputs=["model:/w/apples.pt"])
    assert record_run_lineage(
        store, pre.id, inputs=["apples", "model:/w/base.pt"], outputs=[Ref.task(t1), Ref.task(t2)]
    )
    assert record_run_lineage(store, infer.id, inputs=["model:/w/apples.pt"], outputs=["pears"])
    assert record_run_lineage(store, other.id, inputs=["plums"], outputs=["file:/x/plums.zip"])
    # And a run that moved task t3 without recording task nodes (only its event history names it)
    mover = store.create_run(apples.id, "agent", "auto-review", {})
    assert record_run_lineage(store, mover.id, inputs=["apples"])
    store.set_role(apples.id, "bot@acme.com", Role.ADMIN)
    store.act(ActionRequest(t3, Action.ASSIGN, assignee="bot@acme.com", by="bot@acme.com", run_id=mover.id))

    def titles(scope: str, **kw: str) -> set[str]:
        return {n.title for n in lineage_graph(store, scope, **kw).nodes}

    # Then the workspace shows everything
    assert {"plums export", "pears inference", "train"} <= titles("workspace")
    # And the pears project keeps the chain it came from (model <- train <- apples), not plums
    assert titles("project", project="pears") == {"pears", "pears inference", "apples.pt", "train", "apples"}
    # And the apples project reaches downstream into pears through the model, not to plums
    apples_view = titles("project", project="apples")
    assert {"pre-annotate", "base.pt", "train", "apples.pt", "pears inference", "pears", "auto-review"} <= apples_view
    assert "plums" not in apples_view and "plums export" not in apples_view
    # And the task scope shows only what touched t1: its run and that run's inputs, not sibling tasks
    t1_view = lineage_graph(store, "task", task=t1)
    assert {n.title for n in t1_view.nodes} == {"apples_01.jpg", "pre-annotate", "apples", "base.pt"}
    # And a task touched only through the event history still shows the run that moved it
    t3_view = lineage_graph(store, "task", task=t3)
    assert {n.title for n in t3_view.nodes} == {"apples_03.jpg", "auto-review", "apples"}
    t3_node = t3_view.find(NodeKind.TASK, t3)
    mover_node = t3_view.find(NodeKind.RUN, mover.id)
    assert t3_node is not None and mover_node is not None
    assert any(e.source == mover_node.id and e.target == t3_node.id for e in t3_view.edges)


def test_many_tasks_of_one_run_fold_into_a_group_card(store: Store, seed_workflow: Workflow) -> None:
    # Given a run that wrote 30 tasks
    project = make_project(store, seed_workflow, [f"img_{i:02d}.jpg" for i in range(30)])
    run = store.create_run(project.id, "totask", "bulk", {})
    assert record_run_lineage(
        store, run.id, inputs=["apples"], outputs=[Ref.task(t.uuid) for t in store.iter_tasks(project.id)]
    )

    # When the project view folds more than 10 tasks per run
    graph = lineage_graph(store, "project", project="apples", collapse_tasks=10)

    # Then one group card stands for the 30 tasks, connected to the run
    (group,) = [n for n in graph.nodes if n.kind is NodeKind.GROUP]
    assert group.attrs["count"] == 30 and group.title == "30 tasks written"
    assert not [n for n in graph.nodes if n.kind is NodeKind.TASK]
    assert len(lineage_graph(store, "project", project="apples", collapse_tasks=0).nodes) == 32
