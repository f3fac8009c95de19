"""YOLO and Pascal VOC folders, read back by supervision with the same boxes and classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.export import export_project
from common.store import Store
from common.workflow import Workflow
from tests.unit.export.builders import labelled_project

sv = pytest.importorskip("supervision", reason="pip install -e '.[dev]' (supervision)")

# The boxes (x1, y1, x2, y2) supervision must find; a polygon reads back as its mask's box.
BOXES = {
    "orchard_01.png": [("apple", (4, 6, 24, 20)), ("pear", (30, 10, 42, 40)), ("pear", (40, 4, 60, 20))],
    "orchard_02.png": [("apple", (10, 10, 40, 30))],
    "orchard_03.png": [],
}


def _boxes(ds: object) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    out = {}
    for path, _, det in ds:  # type: ignore[attr-defined]
        names = [ds.classes[c] for c in det.class_id]  # type: ignore[attr-defined]
        out[Path(path).name] = sorted(zip(names, [tuple(round(v) for v in b) for b in det.xyxy], strict=True))
    return out


def test_yolo_folder_reads_back_in_supervision(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given a project with boxes, a polygon, a keypoint and a classification
    labelled_project(store, seed_workflow, tmp_path)

    # When it is exported as a YOLO folder
    summary = export_project(store, "orchard", "yolo", "yolo", root=tmp_path)

    # Then data.yaml names the classes, and the keypoint and classification are counted as skipped
    out = tmp_path / "yolo"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "apple", 1: "pear"} and data["nc"] == 2
    assert summary.skipped == {"keypoint has no YOLO detection form": 1, "classification has no YOLO detection form": 1}
    # And the labels are normalised: a box as cx cy w h, the polygon as its vertices
    lines = (out / "labels/orchard_01.txt").read_text().splitlines()
    assert lines[0] == "0 0.218750 0.270833 0.312500 0.291667"
    assert lines[2] == "1 0.625000 0.083333 0.937500 0.083333 0.937500 0.416667 0.625000 0.416667"
    # And the images are linked and listed
    assert (out / "images/orchard_01.png").resolve() == (tmp_path / "images/orchard_01.png").resolve()
    assert (out / "images.txt").read_text().split() == [f"images/orchard_0{i}.png" for i in (1, 2, 3)]

    # And supervision reads the same boxes and classes (with pixel rounding of the normalised values)
    ds = sv.DetectionDataset.from_yolo(str(out / "images"), str(out / "labels"), str(out / "data.yaml"))
    assert ds.classes == ["apple", "pear"]
    assert _boxes(ds) == BOXES


def test_voc_folder_reads_back_in_supervision(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given the project exported as a Pascal VOC folder
    labelled_project(store, seed_workflow, tmp_path)
    summary = export_project(store, "orchard", "voc", "voc", root=tmp_path)

    # When supervision reads it
    out = tmp_path / "voc"
    ds = sv.DetectionDataset.from_pascal_voc(str(out / "JPEGImages"), str(out / "Annotations"))

    # Then it finds the same boxes and classes, and the polygon as a polygon
    assert _boxes(ds) == BOXES
    assert sorted(ds.classes) == ["apple", "pear"] and summary.objects == 4
    xml = (out / "Annotations/orchard_01.xml").read_text()
    assert "<polygon>" in xml and "<confidence>0.9</confidence>" in xml and "<width>64</width>" in xml


def test_same_file_names_get_distinct_label_files(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given two data units whose titles share a file name and one with a title reaching out of the folder
    from common.store import DataFile, DataUnit

    project = store.create_project("dupes", seed_workflow)
    ds = store.dataset(project.id, "d")
    titles = ["a/img.png", "b/img.png", "../../escape.png"]
    units = [
        DataUnit(data_hash=f"00000000-0000-4000-8000-{i:012d}", title=t, meta={"width": 10, "height": 10},
                 files={"image": DataFile(url=f"https://cdn.example/{i}.png", original_name=t, is_primary=True)})
        for i, t in enumerate(titles)
    ]  # fmt: skip
    store.add_data_units(project.id, ds, units)

    # When exported to YOLO
    export_project(store, "dupes", "yolo", "out", root=tmp_path)

    # Then each has its own label file inside the folder, and the remote images are listed by URL
    assert sorted(p.name for p in (tmp_path / "out/labels").iterdir()) == ["escape.txt", "img.txt", "img_2.txt"]
    assert not (tmp_path / "escape.txt").exists()
    assert (tmp_path / "out/images.txt").read_text().split() == [f"https://cdn.example/{i}.png" for i in range(3)]
