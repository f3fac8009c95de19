"""The Label Studio webhook app on a real loopback port, a SQLite store and a fake Label Studio."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.enums import Role
from common.labelstudio import WEBHOOK_SECRET_HEADER, link
from common.sdk import AnnotationStage, Client
from common.store import DataFile, DataUnit, Store
from common.workflow import load_workflow
from producer.labelstudio import Delivery, WebhookApp, WebhookServer
from tests.labelstudio.helpers import box

APPLES = Path(__file__).parents[2] / "fixtures" / "apples.yaml"
EMAIL = "ann@example.org"
LS_URL = "http://ls.invalid:8080"
LS_PROJECT = 7


@dataclass
class FakeLabelStudio:
    """The reads the webhook makes, answered from dicts; ``calls`` records them."""

    url: str = LS_URL
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        return {"id": LS_PROJECT, "title": title}

    def annotation(self, annotation_id: int) -> dict[str, Any]:
        self.calls.append(f"annotation {annotation_id}")
        return copy.deepcopy(self.annotations[annotation_id])

    def task(self, task_id: int) -> dict[str, Any]:
        self.calls.append(f"task {task_id}")
        return copy.deepcopy(self.tasks[task_id])

    def user_email(self, user: int | dict[str, Any]) -> str:
        return EMAIL


@dataclass
class World:
    store: Store
    project_id: str
    ls: FakeLabelStudio
    url: str
    deliveries: list[Delivery]

    def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.post(self.url, content=body, headers=headers, timeout=10)
        return httpx.post(self.url, json=body, headers=headers, timeout=10)

    def task_of(self, title: str) -> Any:
        return next(t for t in self.store.iter_tasks(self.project_id, None, {}) if t.data_title == title)


def _payload(ann_id: int, task_id: int, action: str = "ANNOTATION_CREATED", label: str = "pear") -> dict[str, Any]:
    return {
        "action": action,
        "annotation": {"id": ann_id, "task": task_id, "result": [box(label)], "completed_by": 1},
        "task": {"id": task_id, "project": LS_PROJECT, "data": {}},
        "project": {"id": LS_PROJECT},
    }


def _world(tmp_path: Path, secret: str = "") -> Iterator[World]:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    project = store.create_project("apples", load_workflow(APPLES))
    units = [
        DataUnit(
            data_hash=f"apples-{t}",
            title=t,
            meta={"width": 200, "height": 100},
            files={"image": DataFile(url=(tmp_path / f"{t}.png").as_uri(), original_name=t, is_primary=True)},
        )
        for t in ("a1", "a2")
    ]
    store.add_data_units(project.id, store.dataset(project.id, "fruit"), units)
    store.set_role(project.id, EMAIL, Role.ANNOTATOR_REVIEWER)
    ls = FakeLabelStudio()
    link(store, ls, "apples", "Annotate 1", labels=["apple", "pear"])  # type: ignore[arg-type]
    for n, title in enumerate(("a1", "a2"), start=11):
        uuid = next(t.uuid for t in store.iter_tasks(project.id, None, {}) if t.data_title == title)
        ls.tasks[n] = {"id": n, "project": LS_PROJECT, "data": {"annoflow_task": uuid, "title": title}}
        ls.annotations[n * 10] = {
            "id": n * 10,
            "task": n,
            "result": [box("pear")],
            "completed_by": {"id": 1, "email": EMAIL},
            "was_cancelled": False,
        }
    deliveries: list[Delivery] = []
    server = WebhookServer(("127.0.0.1", 0), WebhookApp(store, ls, secret, deliveries.append))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield World(store, project.id, ls, f"http://127.0.0.1:{server.port}/webhook", deliveries)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path)


@pytest.fixture
def secret_world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path, secret="s3cret-for-tests")


def test_annotation_is_applied_once_from_what_label_studio_says(world: World) -> None:
    # Given a webhook whose payload claims a plum, while Label Studio holds a pear for task a1
    payload = _payload(110, 11, label="plum")

    # When it is delivered, and delivered again
    first = world.post(payload)
    events = len(world.store.events(world.project_id))
    second = world.post(payload)

    # Then the first answer says applied and a1 is in review with the pear, by the annotator
    assert first.status_code == 200 and first.json()["result"] == "applied"
    assert first.json()["annotation"] == 110
    a1 = world.task_of("a1")
    assert world.store.workflow(world.project_id).stages[a1.stage_uuid].title == "Review 1"
    assert world.store.events(world.project_id)[-1].actor == EMAIL
    (obj,) = world.store.get_label_row(world.project_id, "apples-a1").objects
    assert obj["class_id"] == "pear"
    # And the second answer says unchanged, and nothing changed
    assert second.status_code == 200 and second.json()["result"] == "unchanged"
    assert len(world.store.events(world.project_id)) == events
    assert [d.outcome.value for d in world.deliveries] == ["applied", "unchanged"]
    assert world.deliveries[0].payload == payload


def test_updated_annotation_of_an_applied_one_changes_nothing(world: World) -> None:
    # Given a1's annotation applied by its ANNOTATION_CREATED webhook
    assert world.post(_payload(110, 11)).json()["result"] == "applied"
    events = len(world.store.events(world.project_id))

    # When Label Studio sends ANNOTATION_UPDATED for it
    answer = world.post(_payload(110, 11, action="ANNOTATION_UPDATED"))

    # Then it is unchanged
    assert answer.json()["result"] == "unchanged"
    assert len(world.store.events(world.project_id)) == events


def test_annotation_of_a_task_that_moved_on_is_reported_not_applied(world: World) -> None:
    # Given a2 submitted in annoflow before its Label Studio annotation arrives
    sdk = Client(world.store).get_project("apples")
    stage = sdk.workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    a2 = next(t for t in stage.get_tasks() if t.data_title == "a2")
    a2.assign(EMAIL)
    a2.submit()
    events = len(world.store.events(world.project_id))

    # When its webhook is delivered
    answer = world.post(_payload(120, 12))

    # Then the answer reports it, the task moved on, and nothing changed
    assert answer.status_code == 200
    assert answer.json()["result"] == "reported" and "moved on" in answer.json()["detail"]
    assert len(world.store.events(world.project_id)) == events
    assert world.store.get_label_row(world.project_id, "apples-a2").objects == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"action": "ANNOTATION_CREATED", "annotation": {"result": []}}', "without annotation.id and task.id"),
        (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": "110"}, "task": {"id": 11}}', "annotation.id"),
    ],
)
def test_malformed_payload_is_400_with_one_line(world: World, body: bytes, needle: str) -> None:
    # When a malformed body is posted
    answer = world.post(body, headers={"Content-Type": "application/json"})

    # Then 400 says what is wrong in one line, and Label Studio was not asked
    assert answer.status_code == 400
    assert needle in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert world.ls.calls == []


def test_payload_naming_another_task_than_the_annotation_is_400(world: World) -> None:
    # Given the events so far
    events = len(world.store.events(world.project_id))

    # When the payload pairs a2's task with a1's annotation
    answer = world.post(_payload(110, 12))

    # Then it is refused, and nothing is applied
    assert answer.status_code == 400 and "belongs to task 11" in answer.json()["error"]
    assert len(world.store.events(world.project_id)) == events


def test_unknown_label_studio_project_is_404_naming_it(world: World) -> None:
    # Given a Label Studio task of project 99, which no stage is linked to
    world.ls.tasks[13] = {"id": 13, "project": 99, "data": {"annoflow_task": "x"}}
    world.ls.annotations[130] = {"id": 130, "task": 13, "result": [], "completed_by": 1}

    # When its webhook arrives
    answer = world.post(_payload(130, 13))

    # Then 404 names the project
    assert answer.status_code == 404
    assert "Label Studio project 99" in answer.json()["error"]


def test_other_actions_are_ignored_with_200(world: World) -> None:
    # When Label Studio sends a project update and a task import
    answers = [world.post({"action": a, "project": {"id": LS_PROJECT}}) for a in ("PROJECT_UPDATED", "TASKS_CREATED")]

    # Then both are answered 200, ignored, and Label Studio was not read
    assert [(a.status_code, a.json()["result"]) for a in answers] == [(200, "ignored")] * 2
    assert world.ls.calls == [] and world.deliveries == []


def test_wrong_path_and_health(world: World) -> None:
    base = world.url.rsplit("/", 1)[0]
    assert httpx.get(f"{base}/health").json() == {"ok": True}
    assert httpx.post(f"{base}/hooks", json={}).status_code == 404


def test_secret_is_required_when_set(secret_world: World) -> None:
    w = secret_world
    # When the webhook comes without the header, and with a wrong one
    missing = w.post(_payload(110, 11))
    wrong = w.post(_payload(110, 11), headers={WEBHOOK_SECRET_HEADER: "guess"})

    # Then both are 401, naming the header but never the secret, and nothing was read or applied
    for answer in (missing, wrong):
        assert answer.status_code == 401
        assert WEBHOOK_SECRET_HEADER in answer.json()["error"]
        assert "s3cret" not in answer.text
    assert w.ls.calls == []

    # When it carries the secret, Then it is applied
    right = w.post(_payload(110, 11), headers={WEBHOOK_SECRET_HEADER: "s3cret-for-tests"})
    assert right.status_code == 200 and right.json()["result"] == "applied"
