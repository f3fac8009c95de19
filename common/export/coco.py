"""COCO instances JSON: images with their sizes, annotations (bbox, polygon segmentation, keypoints), categories.

The file is streamed: images are written as they come, annotations go to a spool
file beside it and are appended at the end, then the categories seen. What COCO
has no field for travels in ``annoflow`` extras: an annotation's own object id,
type, class id, properties and provenance; an image's data hash, URL, task state
and its classifications (COCO has no image-level class).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from common.export.source import ExportItem
from common.export.summary import Tally
from common.export.writer import Writer, class_name, polygon_area
from common.totask.objects import AnnotationObject, bbox_of

__all__ = ["CocoWriter"]


class _Categories:
    """COCO category ids: an integer class id keeps its value; a text one gets the next free id."""

    def __init__(self) -> None:
        self.by_class: dict[int | str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self._next = 1

    def id_of(self, obj: AnnotationObject) -> int:
        found = self.by_class.get(obj.class_id)
        if found is not None:
            return found
        taken = {r["id"] for r in self.rows}
        if isinstance(obj.class_id, int) and obj.class_id not in taken:
            cid = obj.class_id
        else:
            while self._next in taken or self._next in self.by_class:
                self._next += 1
            cid = self._next
        self.by_class[obj.class_id] = cid
        self.rows.append(
            {"id": cid, "name": class_name(obj), "supercategory": "", "annoflow": {"class_id": obj.class_id}}
        )
        return cid


class CocoWriter(Writer):
    """One COCO instances JSON file."""

    name = "coco"

    def __init__(self, target: Path, tally: Tally) -> None:
        super().__init__(target, tally)
        self.categories = _Categories()
        self._partial = target.with_name(target.name + ".partial")
        self._spool = target.with_name(target.name + ".annotations.partial")
        self._ann_id = 0

    def open(self) -> None:
        self._out = self._partial.open("wb")
        self._anns = self._spool.open("wb")
        self._out.write(b'{"info": {"description": "annoflow export"}, "licenses": [], "images": [\n')
        self._first_image = True
        self._first_ann = True

    def write(self, item: ExportItem) -> None:
        classifications = []
        for obj in item.objects:
            if obj.type == "classification":
                classifications.append(obj.wire())
                self.tally.objects += 1
                continue
            ann = self._annotation(item.index, obj)
            if ann is None:
                self.tally.skip(f"{obj.type} has no COCO form")
                continue
            self._anns.write(b"" if self._first_ann else b",\n")
            self._anns.write(to_json(ann))
            self._first_ann = False
            self.tally.objects += 1
        image = {
            "id": item.index,
            "file_name": item.file_name,
            "width": round(item.width or 0),
            "height": round(item.height or 0),
            "annoflow": {
                "data_hash": item.data_hash, "title": item.title, "url": item.image_url, "stage_uuid": item.stage_uuid,
                "status": item.status, "branch": item.branch, "classifications": classifications,
            },
        }  # fmt: skip
        self._out.write(b"" if self._first_image else b",\n")
        self._out.write(to_json(image))
        self._first_image = False

    def _annotation(self, image_id: int, obj: AnnotationObject) -> dict[str, Any] | None:
        box = bbox_of(obj)
        if box is None or obj.type == "polyline":
            return None
        x1, y1, x2, y2 = box
        self._ann_id += 1
        ann: dict[str, Any] = {
            "id": self._ann_id,
            "image_id": image_id,
            "category_id": self.categories.id_of(obj),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1),
            "iscrowd": 1 if obj.properties.get("iscrowd") else 0,
        }
        if obj.type == "polygon":
            points = obj.coordinates["points"]
            ann["segmentation"] = [[v for p in points for v in p]]
            ann["area"] = polygon_area(points)
        elif obj.type == "keypoint":
            visibility = obj.coordinates.get("visibility", 2)
            ann["keypoints"] = [obj.coordinates["x"], obj.coordinates["y"], visibility]
            ann["num_keypoints"] = 1
        if obj.score is not None:
            ann["score"] = obj.score
        extras: dict[str, Any] = {"id": obj.id, "type": obj.type, "class_id": obj.class_id}
        if obj.properties:
            extras["properties"] = obj.properties
        if obj.provenance is not None:
            extras["provenance"] = obj.provenance.model_dump(mode="json", exclude_none=True)
        ann["annoflow"] = extras
        return ann

    def close(self) -> list[Path]:
        self._anns.close()
        self._out.write(b'\n], "annotations": [\n')
        with self._spool.open("rb") as spool:
            shutil.copyfileobj(spool, self._out, 1 << 20)
        self._out.write(b'\n], "categories": ')
        self._out.write(to_json(sorted(self.categories.rows, key=lambda r: r["id"])))
        self._out.write(b"}\n")
        self._out.close()
        self._spool.unlink()
        self._partial.replace(self.target)
        self.classes.names = [r["name"] for r in self.categories.rows]
        return [self.target]

    def abort(self) -> None:
        for f in (self._out, self._anns):
            f.close()
        for p in (self._partial, self._spool):
            p.unlink(missing_ok=True)
