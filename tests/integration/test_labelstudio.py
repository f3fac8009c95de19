"""The Label Studio connector against a real Label Studio server on loopback (one per module)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from common.errors import AnnoflowError
from common.labelstudio import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioConfigError,
    LabelStudioUnreachableError,
    link,
    pull,
    push,
)
from common.sdk import AnnotationStage, Client
from tests.labelstudio.helpers import annotate, box, choice, labelled_store, prelabel
from tests.labelstudio.server import LabelStudio
from tests.servers import free_port

pytestmark = pytest.mark.integration


def test_push_annotate_pull_moves_each_task_once(tmp_path: Path, ls: LabelStudio, client: LabelStudioClient) -> None:
    # Given a project whose first task has a pre-label, its annotation stage linked to a new Label Studio project
    store, pid = labelled_store(tmp_path, ls, "apples", ["a1", "a2"])
    sdk = Client(store).get_project("apples")
    prelabel(store, "apples", "apples-a1", {"x": 20, "y": 10, "width": 100, "height": 50})
    lnk = link(store, client, "apples", "Annotate 1")

    # When it is pushed twice
    first, second = push(store, client, lnk, str(ls.files_root)), push(store, client, lnk, str(ls.files_root))

    # Then Label Studio holds each task once, the pre-label as a prediction, the image by local-files URL
    assert (first.pushed, second.pushed, second.already) == (2, 0, 2)
    tasks = {t["data"]["title"]: t for t in client.tasks(lnk.ls_project)}
    assert set(tasks) == {"a1", "a2"}
    pred = client.get("/api/predictions", task=tasks["a1"]["id"])
    assert pred[0]["result"][0]["value"]["rectanglelabels"] == ["apple"]
    assert tasks["a1"]["data"]["image"] == "/data/local-files/?d=apples/a1.png"
    assert httpx.get(ls.url + tasks["a1"]["data"]["image"], headers=client._auth()).status_code == 200

    # When a1 is annotated in Label Studio, a2 is moved on in annoflow first and then annotated too
    annotate(ls, tasks["a1"]["id"], [box("pear")])
    stage = sdk.workflow.get_stage(name="Annotate 1", type_=AnnotationStage)
    a2 = next(t for t in stage.get_tasks() if t.data_title == "a2")
    a2.assign(ls.email)
    a2.submit()
    annotate(ls, tasks["a2"]["id"], [box("plum")])
    report = pull(store, client, lnk)
    events = len(store.events(pid))
    again = pull(store, client, lnk)

    # Then a1 is in review with the annotator's box, a2's annotation is reported, and the second pull changes nothing
    assert len(report.applied) == 1 and a2.uuid not in report.applied[0]
    assert len(report.reported) == 1 and "moved on" in report.reported[0]
    a1 = store.get_task(next(t.uuid for t in store.iter_tasks(pid, None, {}) if t.data_title == "a1"))
    assert store.workflow(pid).stages[a1.stage_uuid].title == "Review 1"
    assert store.events(pid)[-1].actor == ls.email
    (obj,) = store.get_label_row(pid, "apples-a1").objects
    assert obj["class_id"] == "pear" and obj["properties"]["annotator"] == ls.email
    assert obj["coordinates"] == {"x": 20.0, "y": 20.0, "width": 100.0, "height": 40.0}
    assert (again.applied, again.unchanged, len(store.events(pid))) == ([], 1, events)

    # When the review stage is linked, pushed and a1 approved in Label Studio
    review = link(store, client, "apples", "Review 1")
    assert push(store, client, review).pushed == 2  # a1 and a2 both wait in review now
    rtasks = {t["data"]["title"]: t for t in client.tasks(review.ls_project)}
    annotate(ls, rtasks["a1"]["id"], [box("pear"), choice("approve")])
    annotate(ls, rtasks["a2"]["id"], [box("plum")])  # no decision
    done = pull(store, client, review)

    # Then a1 is complete, and a2 without a decision is reported
    assert store.get_task(a1.uuid).status.value == "COMPLETED"
    assert len(done.applied) == 1 and "approve" in done.applied[0]
    assert "no approve/reject" in done.reported[0]
    store.close()


def test_wrong_token_unreachable_server_and_foreign_config_are_one_line_errors(
    tmp_path: Path, ls: LabelStudio, client: LabelStudioClient
) -> None:
    # Given a store with a project, a wrong token, a port nobody serves and a foreign Label Studio project
    store, _ = labelled_store(tmp_path, ls, "errs", ["e1"])
    foreign = client.create_project(
        "foreign",
        '<View><Text name="text" value="$text"/>'
        '<Choices name="sentiment" toName="text"><Choice value="x"/></Choices></View>',
    )
    cases: list[tuple[type[AnnoflowError], LabelStudioClient, int | None]] = [
        (LabelStudioAuthError, LabelStudioClient(ls.url, ls.token[:-4] + "AAAA"), None),
        (LabelStudioAuthError, LabelStudioClient(ls.url, "legacy-token-nobody-has"), None),
        (LabelStudioUnreachableError, LabelStudioClient(f"http://127.0.0.1:{free_port()}", ls.token), None),
        (LabelStudioConfigError, client, int(foreign["id"])),
    ]
    for error, c, ls_project in cases:
        # When linking, Then one line names the problem and the fix, and never the token
        with pytest.raises(error) as info:
            link(store, c, "errs", "Annotate 1", ls_project)
        message = str(info.value)
        assert "\n" not in message and ls.token not in message and ls.token[:20] not in message
    store.close()


def test_export_imports_into_label_studio(tmp_path: Path, ls: LabelStudio, client: LabelStudioClient) -> None:
    # Given a project with a labelled unit exported as Label Studio JSON and its labelling config
    store, _ = labelled_store(tmp_path, ls, "exp", ["x1", "x2"])
    sdk = Client(store).get_project("exp")
    box = {"id": "b1", "class_id": "apple", "type": "bbox", "coordinates": {"x": 1, "y": 2, "width": 30, "height": 40}}
    sdk.save_label_row(sdk.get_label_row("exp-x1").model_copy(update={"objects": [box]}))
    out = tmp_path / "out" / "tasks.json"
    sdk.export("labelstudio", out, root=tmp_path)

    # When a project with that config imports the file
    config = out.with_name("tasks.label_config.xml").read_text(encoding="utf-8")
    project = client.create_project("exported", config)
    client.import_tasks(int(project["id"]), json.loads(out.read_text(encoding="utf-8")))

    # Then Label Studio holds both tasks, x1 with the box as a person's annotation
    tasks = {t["data"]["title"]: t for t in client.tasks(int(project["id"]))}
    assert set(tasks) == {"x1", "x2"}
    (ann,) = tasks["x1"]["annotations"]
    assert ann["result"][0]["value"]["rectanglelabels"] == ["apple"]
    store.close()
