"""Routers: the percentage split is a function of the data hash; the user router goes by who acted."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from common.enums import Action, Role, TaskStatus
from common.sdk import AnnotationStage, Client
from common.store import ActionRequest, Store
from common.workflow import Workflow, load_workflow, parse_workflow
from tests.conftest import FIXTURES
from tests.helpers import make_project, make_units

SENIOR, ANN, ADMIN = "senior@acme.com", "ann@acme.com", "admin@acme.com"


def split_workflow(first: float = 30, second: float = 70) -> Workflow:
    """A workflow that starts with a two-way percentage router, then a chained user router."""
    return parse_workflow(
        {
            "name": "Split",
            "start": "Split",
            "stages": [
                {
                    "title": "Split",
                    "type": "percentage_router",
                    "pathways": {
                        "a": {"to": "Annotate A", "percentage": first},
                        "b": {"to": "Who", "percentage": second},
                    },
                },
                {
                    "title": "Who",
                    "type": "user_router",
                    "pathways": {"vip": {"to": "Complete", "users": [SENIOR]}, "rest": "Annotate B"},
                },
                {"title": "Annotate A", "type": "annotation", "pathways": {"submit": "Complete"}},
                {"title": "Annotate B", "type": "annotation", "pathways": {"submit": "Complete"}},
                {"title": "Complete", "type": "complete"},
            ],
        }
    )


def hashes(n: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))) for i in range(n)]


def test_percentage_router_is_a_function_of_the_data_hash() -> None:
    # Given the same workflow compiled twice (as two processes would)
    first, second = split_workflow(), split_workflow()
    # When the same items are routed by each, twice
    ways_1 = [first.resolve(first.start_uuid, h, None)[0].title for h in hashes(200)]
    ways_2 = [second.resolve(second.start_uuid, h, None)[0].title for h in hashes(200)]
    ways_3 = [first.resolve(first.start_uuid, h, "someone@acme.com")[0].title for h in hashes(200)]
    # Then every item goes the same way every time, whoever acts
    assert ways_1 == ways_2 == ways_3
    assert set(ways_1) == {"Annotate A", "Annotate B"}


def test_percentage_router_splits_roughly_by_the_percentages() -> None:
    # Given a 30/70 router
    wf = split_workflow()
    # When 4000 items are routed
    counts = Counter(wf.resolve(wf.start_uuid, h, None)[0].title for h in hashes(4000))
    # Then about 30% go one way and 70% the other (a fair coin would be off by 3 points about once in 10^6)
    assert 0.27 < counts["Annotate A"] / 4000 < 0.33
    assert 0.67 < counts["Annotate B"] / 4000 < 0.73


@pytest.mark.parametrize(("first", "second", "expected"), [(0, 100, {"Annotate B"}), (100, 0, {"Annotate A"})])
def test_zero_and_hundred_percent(first: float, second: float, expected: set[str]) -> None:
    # Given a router that sends everything one way / When 300 items are routed / Then none goes the other way
    wf = split_workflow(first, second)
    assert {wf.resolve(wf.start_uuid, h, None)[0].title for h in hashes(300)} == expected


def test_chained_routers_record_every_pathway_taken() -> None:
    # Given an item the percentage router sends to the user router
    wf = split_workflow(0, 100)
    # When the senior and someone else route it
    vip_stage, vip_path = wf.resolve(wf.start_uuid, hashes(1)[0], SENIOR)
    rest_stage, rest_path = wf.resolve(wf.start_uuid, hashes(1)[0], ANN)
    # Then both routers' choices are returned, and the user router went by who acted
    assert (vip_stage.title, [p.name for p in vip_path]) == ("Complete", ["b", "vip"])
    assert (rest_stage.title, [p.name for p in rest_path]) == ("Annotate B", ["b", "rest"])


def test_import_through_a_start_router_lands_where_resolve_says(store: Store) -> None:
    # Given a project whose start stage is the 30/70 router
    wf = split_workflow()
    titles = [f"item_{i:02}.jpg" for i in range(40)]
    project = make_project(store, wf, titles, name="split")
    # When the items are imported
    landed = {t.data_hash: wf.stages[t.stage_uuid].title for t in store.iter_tasks(project.id)}
    # Then each task is NEW in the stage the router picks for its hash, never in a router
    expected = {u.data_hash: wf.resolve(wf.start_uuid, u.data_hash, None)[0].title for u in make_units(titles)}
    assert landed == expected
    assert set(landed.values()) == {"Annotate A", "Annotate B"}
    assert {t.status for t in store.iter_tasks(project.id)} == {TaskStatus.NEW}


def test_user_router_sends_the_collaborator_set_one_way_and_everyone_else_the_default(store: Store) -> None:
    # Given the pipeline, where submits from "Annotate fast" pass the Who router (seniors skip review)
    wf = load_workflow(FIXTURES / "pipeline.yaml")
    users = {SENIOR: Role.ANNOTATOR, ANN: Role.ANNOTATOR, ADMIN: Role.ADMIN}
    split = wf.stage("Split").uuid
    fast = [
        u.title
        for u in make_units([f"p{i}.jpg" for i in range(30)])
        if wf.resolve(split, u.data_hash, None)[0].title == "Annotate fast"
    ]
    project = make_project(store, wf, fast[:3], name="pipeline", users=users)
    for task in store.iter_tasks(project.id):
        store.act(ActionRequest(task.uuid, Action.PROCEED, pathway="annotate"))
    stage = Client(store).get_project("pipeline").workflow.get_stage(name="Annotate fast", type_=AnnotationStage)
    first, second, third = stage.get_tasks()
    # When the senior submits one, ann another, and the admin one the senior holds
    first.assign(SENIOR).submit()
    second.assign(ANN).submit()
    third.assign(SENIOR).submit(by=ADMIN)
    # Then the senior's goes straight to Complete, the others go to Review
    where = {t.uuid: wf.stages[store.get_task(t.uuid).stage_uuid].title for t in (first, second, third)}
    assert [where[t.uuid] for t in (first, second, third)] == ["Complete", "Review", "Review"]
    # And the history names the router pathway taken
    (submit,) = [e for e in store.events(project.id, first.uuid) if e.action == "submit"]
    assert submit.detail == {"routers": [wf.stage("Who").pathway("seniors").uuid]}
