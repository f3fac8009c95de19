"""COCO export: loaded by pycocotools, scored AP 1.0 against itself, read by supervision, read back by ToTask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.export import export_project
from common.store import Store
from common.totask.download import DownloadSettings, Fetcher
from common.totask.strategies import FileStrategy
from common.workflow import Workflow
from tests.unit.export.builders import OBJECTS, RUN, labelled_project, native
from tests.unit.totask.test_totask_strategies import make_spec

pycocotools_coco = pytest.importorskip("pycocotools.coco", reason="pip install -e '.[dev]' (pycocotools)")
pycocotools_eval = pytest.importorskip("pycocotools.cocoeval", reason="pip install -e '.[dev]' (pycocotools)")
sv = pytest.importorskip("supervision", reason="pip install -e '.[dev]' (supervision)")


def test_coco_export_loads_in_pycocotools_and_scores_ap_1_against_itself(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given a project with boxes, a polygon, a keypoint and a classification
    labelled_project(store, seed_workflow, tmp_path)

    # When it is exported to COCO
    summary = export_project(store, "orchard", "coco", "out/instances.json", root=tmp_path)

    # Then pycocotools loads it with every image (with its size), annotation and category
    gt = pycocotools_coco.COCO(str(tmp_path / "out/instances.json"))
    assert (summary.tasks, summary.objects) == (3, 6)
    assert sorted((i["file_name"], i["width"], i["height"]) for i in gt.dataset["images"]) == [
        ("orchard_01.png", 64, 48), ("orchard_02.png", 80, 60), ("orchard_03.png", 50, 50),
    ]  # fmt: skip
    assert {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())} == {1: "apple", 2: "pear", 3: "stem"}
    anns = {a["annoflow"]["id"]: a for a in gt.loadAnns(gt.getAnnIds())}
    assert set(anns) == {"a1", "a2", "p1", "b1", "k1"}
    assert anns["a1"]["bbox"] == [4, 6, 20, 14] and anns["a1"]["score"] == 0.9
    assert anns["a1"]["annoflow"]["provenance"] == {
        "run_id": RUN, "method": "inference", "pre_processor": "yolo-nano", "pre_processor_version": "1.2",
    }  # fmt: skip
    assert anns["p1"]["segmentation"] == [[40, 4, 60, 4, 60, 20, 40, 20]] and anns["p1"]["area"] == 320
    assert "score" not in anns["p1"]  # a person's polygon has no score
    assert anns["k1"]["keypoints"] == [50, 40, 2]
    image2 = next(i for i in gt.dataset["images"] if i["file_name"] == "orchard_02.png")
    assert [c["id"] for c in image2["annoflow"]["classifications"]] == ["c1"]

    # And COCOeval of the export against itself gives AP 1.0: boxes (every annotation's bbox),
    # and masks (the polygons; COCO boxes carry no segmentation to score)
    polygons = pycocotools_coco.COCO()
    polygons.dataset = {**gt.dataset, "annotations": [a for a in gt.dataset["annotations"] if "segmentation" in a]}
    polygons.createIndex()
    for truth, iou_type in ((gt, "bbox"), (polygons, "segm")):
        dets = [{**a, "score": 1.0} for a in truth.dataset["annotations"] if a["annoflow"]["type"] != "keypoint"]
        ev = pycocotools_eval.COCOeval(truth, truth.loadRes(dets), iou_type)
        ev.params.catIds = [c for c in (1, 2) if truth.getAnnIds(catIds=[c])]  # the keypoint's class has no area
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0), iou_type


def test_coco_export_reads_back_in_supervision_with_the_same_boxes_and_classes(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given the project exported to COCO
    lab = labelled_project(store, seed_workflow, tmp_path)
    export_project(store, "orchard", "coco", "instances.json", root=tmp_path)

    # When supervision loads it with the images
    ds = sv.DetectionDataset.from_coco(str(lab.images), str(tmp_path / "instances.json"))

    # Then every image has its objects' boxes under their class names
    got = {}
    for path, _, det in ds:
        names = [ds.classes[c] for c in det.class_id]
        got[Path(path).name] = sorted(zip(names, [tuple(round(v) for v in b) for b in det.xyxy], strict=True))
    assert got["orchard_01.png"] == [("apple", (4, 6, 24, 20)), ("pear", (30, 10, 42, 40)), ("pear", (40, 4, 60, 20))]
    assert got["orchard_02.png"] == [("apple", (10, 10, 40, 30)), ("stem", (50, 40, 50, 40))]
    assert got["orchard_03.png"] == []


def test_coco_export_round_trips_through_the_totask_file_strategy(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given the project exported to one COCO file
    lab = labelled_project(store, seed_workflow, tmp_path)
    export_project(store, "orchard", "coco", "instances.json", root=tmp_path)
    coco = (tmp_path / "instances.json").as_uri()

    # When each image is imported back from that file by the ToTask file strategy
    specs = [
        make_spec({"image": (lab.images / t).as_uri(), "annotations": coco}, {"method": "file",
                  "target_specification_name": "annotations"}, title=t, meta={"width": 64, "height": 60})
        for t in OBJECTS
    ]  # fmt: skip
    fetcher = Fetcher(DownloadSettings(allowed_roots=[tmp_path], retries=0))
    try:
        results = FileStrategy(fetcher).run(specs)
    finally:
        fetcher.close()

    # Then each image gets the same objects: ids, classes, types, geometry, scores and labels
    # (the classification, which COCO keeps as image extras, is the one object that stays out)
    for title, result in zip(OBJECTS, results, strict=True):
        assert result.success, result.error
        assert result.labels is not None
        back = result.labels.objects
        expected = [o for o in OBJECTS[title] if o["type"] != "classification"]
        assert native(back) == native(expected), title
        assert {o["id"]: o["class_id"] for o in back} == {o["id"]: o["class_id"] for o in expected}
    assert json.loads((tmp_path / "instances.json").read_text())["annotations"][0]["image_id"] == 1
