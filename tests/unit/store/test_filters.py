"""Task filters: the keyword filters of get_tasks and the Django-style filter dict, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from common.enums import Action, Role, TaskStatus
from common.errors import InvalidInputError
from common.sdk import AnnotationStage, Client
from common.store import ActionRequest, ProjectRecord, Store
from common.store.filters import FILTER_FIELDS, LOOKUPS, compile_filters
from common.store.schema import tasks
from common.workflow import Workflow
from tests.helpers import make_project, make_units

TITLES = ["apples_01.jpg", "apples_02.jpg", "Apples_03.JPG", "pear_01.png", "pear_02.png", "100%_plum.jpg"]
ANN, BOB = "ann@acme.com", "bob@acme.com"


@pytest.fixture
def project(store: Store, seed_workflow: Workflow) -> ProjectRecord:
    """Six fruit tasks in Annotate 1 (ann holds two, bob one, one skipped), two veg tasks in another dataset."""
    project = make_project(store, seed_workflow, TITLES, users={ANN: Role.ANNOTATOR, BOB: Role.ANNOTATOR})
    veg = store.dataset(project.id, "veg")
    store.add_data_units(project.id, veg, make_units(["carrot.jpg", "leek.jpg"]))
    by_title = {t.data_title: t for t in store.iter_tasks(project.id)}
    store.assign(by_title["apples_01.jpg"].uuid, ANN)
    store.assign(by_title["apples_02.jpg"].uuid, ANN)
    store.assign(by_title["pear_01.png"].uuid, BOB)
    store.act(ActionRequest(by_title["pear_02.png"].uuid, Action.SKIP, by=BOB))
    # Priorities differ so that range lookups have something to separate.
    with store.write() as conn:
        for i, title in enumerate(TITLES):
            conn.execute(update(tasks).where(tasks.c.uuid == by_title[title].uuid).values(priority=i / 10))
    return project


def titles(store: Store, project: ProjectRecord, filters: dict[str, Any]) -> list[str]:
    return sorted(t.data_title for t in store.iter_tasks(project.id, filters=filters))


def stage_titles(store: Store, project: ProjectRecord, **kw: Any) -> list[str]:
    stage = Client(store).get_project(project.id).workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    return sorted(t.data_title for t in stage.get_tasks(**kw))


def test_status_one_or_list_and_enum_or_text(store: Store, project: ProjectRecord) -> None:
    # Given tasks that are NEW, ASSIGNED and SKIPPED
    # When filtering by one status, given as enum or as text, and by a list
    assigned = stage_titles(store, project, status=TaskStatus.ASSIGNED)
    assigned_text = stage_titles(store, project, status="assigned")
    either = stage_titles(store, project, status=[TaskStatus.SKIPPED, "ASSIGNED"])
    # Then each names exactly the matching tasks
    assert assigned == assigned_text == ["apples_01.jpg", "apples_02.jpg", "pear_01.png"]
    assert either == ["apples_01.jpg", "apples_02.jpg", "pear_01.png", "pear_02.png"]


def test_unknown_status_lists_the_valid_ones(store: Store, project: ProjectRecord) -> None:
    # Given a misspelt status / When filtering / Then the error lists every status
    with pytest.raises(InvalidInputError, match="valid statuses: NEW, ASSIGNED"):
        stage_titles(store, project, status="DONE")


def test_assignee_email_list_or_unassigned(store: Store, project: ProjectRecord) -> None:
    # Given ann holds two tasks and bob one
    # When filtering by one email, a list, and None
    anns = stage_titles(store, project, assignee=ANN)
    both = stage_titles(store, project, assignee=[ANN, BOB])
    nobody = stage_titles(store, project, assignee=None)
    everyone = stage_titles(store, project)
    # Then None means unassigned and leaving it out means everyone
    assert anns == ["apples_01.jpg", "apples_02.jpg"]
    assert both == ["apples_01.jpg", "apples_02.jpg", "pear_01.png"]
    assert nobody == sorted(["Apples_03.JPG", "pear_02.png", "100%_plum.jpg", "carrot.jpg", "leek.jpg"])
    assert len(everyone) == 8


def test_data_hash_one_or_list(store: Store, project: ProjectRecord) -> None:
    # Given the hashes of two tasks
    by_title = {t.data_title: t.data_hash for t in store.iter_tasks(project.id)}
    # When filtering by one hash and by a list
    one = stage_titles(store, project, data_hash=by_title["pear_01.png"])
    two = stage_titles(store, project, data_hash=[by_title["pear_01.png"], by_title["leek.jpg"]])
    # Then only those tasks come back
    assert one == ["pear_01.png"]
    assert two == ["leek.jpg", "pear_01.png"]


def test_data_title_contains_is_case_insensitive_and_literal(store: Store, project: ProjectRecord) -> None:
    # Given titles in mixed case and one with a LIKE wildcard in it
    # When searching for part of a title
    apples = stage_titles(store, project, data_title="APPLES")
    percent = stage_titles(store, project, data_title="100%")
    underscore = stage_titles(store, project, data_title="r_0")
    # Then case is ignored on both backends and % and _ match only themselves
    assert apples == ["Apples_03.JPG", "apples_01.jpg", "apples_02.jpg"]
    assert percent == ["100%_plum.jpg"]
    assert underscore == ["pear_01.png", "pear_02.png"]


def test_dataset_by_name_or_id(store: Store, project: ProjectRecord) -> None:
    # Given a "veg" dataset beside "fruit"
    veg_id = store.dataset(project.id, "veg")
    # When filtering by its name and by its id
    by_name = stage_titles(store, project, dataset="veg")
    by_id = titles(store, project, {"dataset": veg_id})
    # Then both give the veg tasks
    assert by_name == by_id == ["carrot.jpg", "leek.jpg"]


def test_django_dict_lookups(store: Store, project: ProjectRecord) -> None:
    # Given priorities 0.0 .. 0.5 on the fruit tasks (veg at the default 0.5)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"data_title": "pear_01.png"}, ["pear_01.png"]),
        ({"data_title__in": ["pear_01.png", "leek.jpg"]}, ["leek.jpg", "pear_01.png"]),
        ({"priority__gte": 0.4, "dataset": "fruit"}, ["100%_plum.jpg", "pear_02.png"]),
        ({"priority__gt": 0.4, "dataset": "fruit"}, ["100%_plum.jpg"]),
        ({"priority__lte": 0.1}, ["apples_01.jpg", "apples_02.jpg"]),
        ({"priority__lt": "0.1"}, ["apples_01.jpg"]),
        ({"assignee__contains": "ANN@"}, ["apples_01.jpg", "apples_02.jpg"]),
        ({"assignee__isnull": False}, ["apples_01.jpg", "apples_02.jpg", "pear_01.png"]),
        ({"status__in": ["SKIPPED"], "last_actioned_by": BOB}, ["pear_02.png"]),
        ({"assignee": None, "dataset": "fruit"}, ["100%_plum.jpg", "Apples_03.JPG", "pear_02.png"]),
    ]
    for filters, expected in cases:
        # When the dict is applied / Then exactly the expected tasks match
        assert titles(store, project, filters) == sorted(expected), filters


def test_date_lookups_and_limit(store: Store, project: ProjectRecord) -> None:
    # Given every task was created a moment ago and four were acted on since
    before = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    after = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    # When comparing dates and limiting the count
    recent = titles(store, project, {"created_at__gte": before})
    future = titles(store, project, {"created_at__gt": after})
    limited = list(store.iter_tasks(project.id, filters={"limit": 3}, page_size=2))
    # Then dates compare as dates and limit caps the tasks yielded
    assert len(recent) == 8 and future == []
    assert len(limited) == 3


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "red"}, "unknown task filter field 'colour'.*valid fields: uuid, data_hash"),
        ({"status__startswith": "N"}, "unknown lookup 'startswith'.*valid lookups: exact, in, gte"),
        ({"status__in": "NEW"}, "needs a list"),
        ({"priority__gte": "high"}, "not a number"),
        ({"priority__contains": 1}, "contains applies to text fields only"),
        ({"assignee__isnull": "yes"}, "takes True or False"),
        ({"created_at__gte": "last week"}, "not a date; use ISO 8601"),
        ({"limit": 0}, "positive integer"),
        ({"limit": "10"}, "positive integer"),
        ({"dataset__gte": "a"}, "on a field other than dataset"),
    ],
)
def test_bad_filters_say_what_is_valid(filters: dict[str, Any], message: str) -> None:
    # Given a wrong filter / When it is compiled / Then the error says what to use instead
    with pytest.raises(InvalidInputError, match=message):
        compile_filters(filters)


def test_every_public_field_and_lookup_compiles() -> None:
    # Given every field and lookup the error messages advertise
    # When each is compiled with a value of its kind
    compiled = 0
    for field in FILTER_FIELDS:
        for lookup in LOOKUPS:
            kind = {"priority": 1, "attempts": 1, "created_at": "2026-01-01", "updated_at": "2026-01-01"}
            one: Any = "NEW" if field == "status" else kind.get(field, "x")
            value: Any = {"in": [one], "isnull": True}.get(lookup, one)
            text = field not in kind and field not in ("dataset", "data_collection")
            if (lookup == "contains" and not text) or (field in ("dataset", "data_collection") and lookup[0] in "gl"):
                continue
            compile_filters({f"{field}__{lookup}": value})
            compiled += 1
    # Then none of them is refused
    assert compiled > 60
