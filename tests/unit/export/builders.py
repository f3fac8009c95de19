"""A small labelled project with real image files, for the export tests.

Three images made with Pillow (no download), each data unit with its size in meta,
and label rows mixing what a run predicted (with provenance and score) and what a
person drew (no provenance): boxes, a polygon, a keypoint and a classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from common.store import DataFile, DataUnit, ProjectRecord, Store
from common.workflow import Workflow

RUN = "run-7f3a"
INFERENCE = {"run_id": RUN, "method": "inference", "pre_processor": "yolo-nano", "pre_processor_version": "1.2"}
SIZES = {"orchard_01.png": (64, 48), "orchard_02.png": (80, 60), "orchard_03.png": (50, 50)}


def box(ident: str, cls: int | str, label: str, x: float, y: float, w: float, h: float, **extra: Any) -> dict[str, Any]:
    coords = {"x": x, "y": y, "width": w, "height": h}
    return {
        "id": ident,
        "class_id": cls,
        "type": "bbox",
        "coordinates": coords,
        "properties": {"label": label},
        **extra,
    }


def polygon(ident: str, cls: int | str, label: str, points: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {"id": ident, "class_id": cls, "type": "polygon", "coordinates": {"points": points},
            "properties": {"label": label}, **extra}  # fmt: skip


# Objects per image title: predictions carry provenance and a score; people's objects carry neither.
OBJECTS: dict[str, list[dict[str, Any]]] = {
    "orchard_01.png": [
        box("a1", 1, "apple", 4, 6, 20, 14, score=0.9, provenance=INFERENCE),
        box("a2", 2, "pear", 30, 10, 12, 30, score=0.75, provenance=INFERENCE),
        polygon("p1", 2, "pear", [[40, 4], [60, 4], [60, 20], [40, 20]]),
    ],
    "orchard_02.png": [
        box("b1", 1, "apple", 10, 10, 30, 20, score=0.6, provenance=INFERENCE),
        {
            "id": "k1",
            "class_id": 3,
            "type": "keypoint",
            "coordinates": {"x": 50, "y": 40},
            "properties": {"label": "stem"},
        },
        {"id": "c1", "class_id": 4, "type": "classification", "properties": {"label": "ripe"}},
    ],
    "orchard_03.png": [],
}


@dataclass
class Labelled:
    project: ProjectRecord
    images: Path  # the folder holding the image files
    hashes: dict[str, str]  # title -> data hash


def make_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, size) in enumerate(SIZES.items()):
        Image.new("RGB", size, (40 * i, 120, 200)).save(folder / name)
    return folder


def labelled_project(
    store: Store,
    wf: Workflow,
    tmp_path: Path,
    name: str = "orchard",
    objects: dict[str, list[dict[str, Any]]] | None = None,
) -> Labelled:
    """A project of three images with :data:`OBJECTS` (or ``objects``) on their main branch."""
    images = make_images(tmp_path / "images")
    project = store.create_project(name, wf)
    dataset = store.dataset(project.id, "fruit")
    units = [
        DataUnit(
            data_hash=f"00000000-0000-4000-8000-{i:012d}",
            title=title,
            meta={"width": w, "height": h},
            files={"image": DataFile(url=(images / title).as_uri(), original_name=title, is_primary=True)},
        )
        for i, (title, (w, h)) in enumerate(SIZES.items(), start=1)
    ]
    store.add_data_units(project.id, dataset, units)
    hashes = {u.title: u.data_hash for u in units}
    for title, objs in (OBJECTS if objects is None else objects).items():
        if objs:
            row = store.get_label_row(project.id, hashes[title])
            store.save_label_row(row.model_copy(update={"objects": objs}))
    return Labelled(project, images, hashes)


def native(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """What must survive any export: id, type, geometry (to 1e-6 px), score, label.

    A keypoint's COCO visibility flag, which readers add, is not geometry.
    """
    return {
        o["id"]: (
            o["type"],
            {k: _round(v) for k, v in o.get("coordinates", {}).items() if k != "visibility"},
            o.get("score"),
            o.get("properties", {}).get("label"),
        )
        for o in objects
    }


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [_round(v) for v in value]
    return round(float(value), 6) if isinstance(value, (int, float)) else value
