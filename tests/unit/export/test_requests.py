"""What an export is asked for: filters, saved versions, output paths, bad input, flat paging, the SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.enums import Action, Role
from common.errors import InvalidInputError, NotFoundError
from common.export import export_project, open_source
from common.export.summary import Tally
from common.sdk import Client
from common.store import ActionRequest, Store
from common.versions import create_version
from common.workflow import Workflow
from tests.unit.export.builders import box, labelled_project

ADMIN = "chris@acme.com"


def _titles(path: Path) -> list[str]:
    return [json.loads(line)["title"] for line in path.read_text().splitlines()]


def test_stage_and_status_choose_the_tasks(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given one of three tasks submitted to Review
    lab = labelled_project(store, seed_workflow, tmp_path)
    store.set_role(lab.project.id, ADMIN, Role.ADMIN)
    first = next(store.iter_tasks(lab.project.id))
    store.act(ActionRequest(first.uuid, Action.ASSIGN, assignee=ADMIN, by=ADMIN))
    store.act(ActionRequest(first.uuid, Action.SUBMIT, by=ADMIN))

    # When the Review stage, and the NEW tasks of Annotate 1, are exported
    review = export_project(store, "orchard", "jsonl", "review.jsonl", stage="Review 1", root=tmp_path)
    new = export_project(store, "orchard", "jsonl", "new.jsonl", stage="Annotate 1", status=["new"], root=tmp_path)

    # Then each holds just its tasks
    assert _titles(tmp_path / "review.jsonl") == ["orchard_01.png"] and review.tasks == 1
    assert _titles(tmp_path / "new.jsonl") == ["orchard_02.png", "orchard_03.png"] and new.tasks == 2


def test_a_saved_version_exports_its_labels_not_todays(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given version 1, then a label row changed
    lab = labelled_project(store, seed_workflow, tmp_path)
    create_version(store, "orchard", title="before")
    row = store.get_label_row(lab.project.id, lab.hashes["orchard_01.png"])
    store.save_label_row(row.model_copy(update={"objects": [box("new", 9, "plum", 1, 1, 2, 2)]}))

    # When version 1 is exported (by version=1 and as orchard@1) and the project as it is now
    v1 = export_project(store, "orchard", "coco", "v1.json", version=1, root=tmp_path)
    at = export_project(store, "orchard@1", "coco", "at1.json", root=tmp_path)
    today = export_project(store, "orchard", "coco", "now.json", root=tmp_path)

    # Then the version has the old objects and today's export the new one
    def ids(name: str) -> set[str]:
        return {a["annoflow"]["id"] for a in json.loads((tmp_path / name).read_text())["annotations"]}

    assert ids("v1.json") == ids("at1.json") == {"a1", "a2", "p1", "b1", "k1"}
    assert ids("now.json") == {"new", "b1", "k1"}
    assert (v1.version, at.version, today.version) == (1, 1, None) and v1.tasks == 3


def test_an_existing_output_needs_force(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given an export already written, file and folder
    labelled_project(store, seed_workflow, tmp_path)
    export_project(store, "orchard", "coco", "out.json", root=tmp_path)
    export_project(store, "orchard", "yolo", "yolo", root=tmp_path)
    (tmp_path / "yolo/labels/stale.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    # When they are exported again without force, then it is refused and says how to fix it
    for fmt, out in (("coco", "out.json"), ("yolo", "yolo")):
        with pytest.raises(InvalidInputError, match="exists; pass --force"):
            export_project(store, "orchard", fmt, out, root=tmp_path)

    # And with force they are replaced, leaving no stale label file
    export_project(store, "orchard", "yolo", "yolo", root=tmp_path, force=True)
    assert not (tmp_path / "yolo/labels/stale.txt").exists()
    assert export_project(store, "orchard", "coco", "out.json", root=tmp_path, force=True).tasks == 3


@pytest.mark.parametrize("target", ["../outside.json", "sub/../../outside.json", "/etc/annoflow.json", "."])
def test_a_target_outside_the_folder_is_refused(
    store: Store, seed_workflow: Workflow, tmp_path: Path, target: str
) -> None:
    # Given a project and a root folder
    labelled_project(store, seed_workflow, tmp_path)
    root = tmp_path / "exports"
    root.mkdir()

    # When the target leaves the folder, then it is refused before anything is written
    with pytest.raises(InvalidInputError, match="outside the folder"):
        export_project(store, "orchard", "coco", target, root=root)
    assert not (tmp_path / "outside.json").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"format": "tfrecord"}, InvalidInputError, "unknown export format 'tfrecord'; choose one of: coco, yolo"),
        ({"stage": "Label"}, NotFoundError, "has no stage 'Label'; stages: 'Annotate 1'"),
        ({"status": "DONE"}, InvalidInputError, "unknown task status 'DONE'; valid statuses"),
        ({"version": 7}, NotFoundError, "has no version 7; list them with 'annoflow version list"),
        ({"project": "orchard@x"}, InvalidInputError, "write PROJECT@N"),
        ({"project": "plums"}, NotFoundError, "no project 'plums'"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    store: Store,
    seed_workflow: Workflow,
    tmp_path: Path,
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    # Given a project
    labelled_project(store, seed_workflow, tmp_path)
    args: dict[str, object] = {"project": "orchard", "format": "coco", "output": "out.json", "root": tmp_path} | kwargs

    # When the export is asked for with one bad part, then one clear error says what and how to fix it
    with pytest.raises(error, match=message.replace("(", r"\(").replace("[", r"\[")):
        export_project(store, **args)  # type: ignore[arg-type]
    assert not (tmp_path / "out.json").exists()


def test_tasks_are_read_a_keyset_page_at_a_time(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given three tasks and pages of two
    labelled_project(store, seed_workflow, tmp_path)
    source = open_source(store, "orchard", page_size=2)

    # When the source is read
    pages = [[item.title for item in page] for page in source.pages(Tally())]

    # Then it comes in pages of at most two, in task order, with the total known up front
    assert pages == [["orchard_01.png", "orchard_02.png"], ["orchard_03.png"]]
    assert source.total() == 3


def test_objects_outside_the_native_model_are_counted_not_lost_silently(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given a label row with one valid box and one object of another shape
    lab = labelled_project(store, seed_workflow, tmp_path, objects={})
    row = store.get_label_row(lab.project.id, lab.hashes["orchard_01.png"])
    odd = {"objectHash": "x", "name": "apple", "box": [1, 2, 3, 4]}
    store.save_label_row(row.model_copy(update={"objects": [box("ok", 1, "apple", 1, 1, 5, 5), odd]}))

    # When it is exported
    summary = export_project(store, "orchard", "coco", "out.json", root=tmp_path)

    # Then the box is written and the other object counted as skipped
    assert summary.objects == 1 and summary.skipped == {"not a native annotation object": 1}


def test_the_sdk_exports_a_project(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given the SDK's view of a labelled project
    labelled_project(store, seed_workflow, tmp_path)
    project = Client(store).get_project("orchard")
    seen: list[tuple[int, int | None]] = []

    # When it exports with a progress callback
    summary = project.export("labelstudio", "tasks.json", root=tmp_path, on_progress=lambda d, t: seen.append((d, t)))

    # Then the file is written and progress reported against the total
    assert summary.format == "labelstudio" and summary.tasks == 3
    assert len(json.loads((tmp_path / "tasks.json").read_text())) == 3
    assert seen == [(3, 3)]


def test_project_at_version_and_version_must_agree(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given versions 1 and 2 (a label row changed in between)
    lab = labelled_project(store, seed_workflow, tmp_path)
    create_version(store, "orchard")
    row = store.get_label_row(lab.project.id, lab.hashes["orchard_01.png"])
    store.save_label_row(row.model_copy(update={"objects": [box("new", 9, "plum", 1, 1, 2, 2)]}))
    create_version(store, "orchard")

    # When orchard@1 is asked for with version=2, then it is refused, naming both and asking for one
    with pytest.raises(InvalidInputError, match=r"'orchard@1' names version 1 but version=2 was given; name one"):
        export_project(store, "orchard@1", "jsonl", "conflict.jsonl", version=2, root=tmp_path)
    assert not (tmp_path / "conflict.jsonl").exists()

    # And the same version both ways, or @latest, exports that version
    same = export_project(store, "orchard@1", "jsonl", "same.jsonl", version=1, root=tmp_path)
    latest = export_project(store, "orchard@latest", "jsonl", "latest.jsonl", root=tmp_path)
    assert (same.version, latest.version) == (1, 2)


@pytest.mark.parametrize(
    ("project", "error", "message"),
    [
        ("orchard@9", NotFoundError, "project 'orchard' has no version 9; list them with 'annoflow version list"),
        ("orchard@x", InvalidInputError, "'orchard@x': write PROJECT@N"),
        ("orchard@", InvalidInputError, "'orchard@': write PROJECT@N"),
        ("orchard@0", InvalidInputError, "'orchard@0': write PROJECT@N (N a version number, 1 or more)"),
        ("@1", InvalidInputError, "'@1': write PROJECT@N"),
        ("orchard@latest", NotFoundError, "project 'orchard' has no version yet"),
        ("plums@1", NotFoundError, "no project 'plums'"),
    ],
)
def test_a_bad_project_at_version_says_what_is_wrong(
    store: Store, seed_workflow: Workflow, tmp_path: Path, project: str, error: type[Exception], message: str
) -> None:
    # Given a project without versions, when an unknown or malformed version of it is exported
    labelled_project(store, seed_workflow, tmp_path)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        export_project(store, project, "coco", "out.json", root=tmp_path)

    # Then nothing is written
    assert not (tmp_path / "out.json").exists()
