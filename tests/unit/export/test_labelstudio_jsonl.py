"""Label Studio tasks (predictions, annotations, percent regions, the config) and JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree.ElementTree import fromstring

import pytest

from common.export import export_project
from common.store import Store
from common.totask.download import DownloadSettings, Fetcher
from common.totask.strategies import FileStrategy
from common.workflow import Workflow
from tests.unit.export.builders import INFERENCE, OBJECTS, RUN, box, labelled_project, native, polygon
from tests.unit.totask.test_totask_strategies import make_spec


def test_labelstudio_tasks_hold_predictions_annotations_and_percent_regions(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given predicted boxes, a person's polygon, keypoint and classification
    lab = labelled_project(store, seed_workflow, tmp_path)

    # When exported for Label Studio
    summary = export_project(store, "orchard", "labelstudio", "ls/tasks.json", root=tmp_path)

    # Then each data unit is a task with data.image
    tasks = json.loads((tmp_path / "ls/tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [(lab.images / t).as_uri() for t in OBJECTS]
    first, second, third = tasks
    # And the run's boxes are one prediction named after the pre-processor, scored by their mean
    (pred,) = first["predictions"]
    assert pred["model_version"] == "yolo-nano@1.2" and pred["score"] == pytest.approx(0.825)
    a1 = pred["result"][0]
    assert a1["type"] == "rectanglelabels" and a1["value"]["rectanglelabels"] == ["apple"]
    assert (a1["original_width"], a1["original_height"]) == (64, 48) and a1["score"] == 0.9
    assert a1["value"]["x"] == pytest.approx(4 / 64 * 100) and a1["value"]["height"] == pytest.approx(14 / 48 * 100)
    # And what people drew is an annotation: polygon, keypoint, choices
    (poly,) = first["annotations"][0]["result"]
    assert poly["type"] == "polygonlabels" and poly["value"]["points"][1] == pytest.approx(
        [60 / 64 * 100, 4 / 48 * 100]
    )
    kinds = {r["type"]: r["value"] for r in second["annotations"][0]["result"]}
    assert kinds["keypointlabels"]["keypointlabels"] == ["stem"] and kinds["choices"] == {"choices": ["ripe"]}
    assert third["predictions"] == [] and "annotations" not in third
    assert summary.objects == 6 and summary.skipped == {}

    # And the labelling config names every control with the labels seen
    view = fromstring((tmp_path / "ls/tasks.label_config.xml").read_text())
    controls = {c.tag: (c.get("name"), [v.get("value") for v in c]) for c in view if c.tag != "Image"}
    assert controls == {
        "RectangleLabels": ("label", ["apple", "pear"]),
        "PolygonLabels": ("polygon", ["pear"]),
        "KeyPointLabels": ("keypoint", ["stem"]),
        "Choices": ("choice", ["ripe"]),
    }
    assert view.find("Image").get("value") == "$image"  # type: ignore[union-attr]


def test_labelstudio_export_round_trips_through_the_totask_file_strategy(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given one run's predictions (Label Studio names classes, so class ids are names here)
    objects = {
        "orchard_01.png": [
            box("r1", "apple", "apple", 4.5, 6, 20, 14.25, score=0.9, provenance=INFERENCE),
            polygon("r2", "pear", "pear", [[40, 4], [60, 4], [50, 20]], score=0.7, provenance=INFERENCE),
        ],
        "orchard_02.png": [
            {"id": "r3", "class_id": "stem", "type": "keypoint", "coordinates": {"x": 50, "y": 40},
             "properties": {"label": "stem"}, "score": 0.5, "provenance": INFERENCE},
            {"id": "r4", "class_id": "ripe", "type": "classification", "properties": {"label": "ripe"},
             "score": 0.8, "provenance": INFERENCE},
        ],
        "orchard_03.png": [],
    }  # fmt: skip
    lab = labelled_project(store, seed_workflow, tmp_path, objects=objects)
    export_project(store, "orchard", "labelstudio", "tasks.json", root=tmp_path)

    # When each task is saved as its own file and imported back by the ToTask file strategy
    specs = []
    for task in json.loads((tmp_path / "tasks.json").read_text()):
        title = task["data"]["title"]
        path = tmp_path / f"{title}.ls.json"
        path.write_text(json.dumps(task))
        files = {"image": (lab.images / title).as_uri(), "annotations": path.as_uri()}
        specs.append(make_spec(files, {"method": "file", "target_specification_name": "annotations"}, title=title))
    fetcher = Fetcher(DownloadSettings(allowed_roots=[tmp_path], retries=0))
    try:
        results = [r for spec in specs[:2] for r in FileStrategy(fetcher).run([spec])]
    finally:
        fetcher.close()

    # Then the same objects come back: ids, classes, types, pixel geometry, scores, labels
    for (title, expected), result in zip(objects.items(), results, strict=False):
        assert result.success, result.error
        assert result.labels is not None
        assert native(result.labels.objects) == native(expected), title
        assert {o["id"]: o["class_id"] for o in result.labels.objects} == {o["id"]: o["class_id"] for o in expected}


def test_jsonl_has_one_data_unit_per_line_with_objects_and_provenance(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given the labelled project
    labelled_project(store, seed_workflow, tmp_path)

    # When exported as JSON Lines
    export_project(store, "orchard", "jsonl", "labels.jsonl", root=tmp_path)

    # Then each line is one data unit with its size, task state and native objects
    lines = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [ln["title"] for ln in lines] == list(OBJECTS)
    assert lines[0]["image"]["width"] == 64 and lines[0]["status"] == "NEW" and lines[0]["branch"] == "main"
    assert native(lines[0]["objects"]) == native(OBJECTS["orchard_01.png"])
    assert lines[0]["objects"][0]["provenance"]["run_id"] == RUN
    assert "provenance" not in lines[0]["objects"][2]
