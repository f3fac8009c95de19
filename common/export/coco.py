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
from typing import Any, BinaryIO

from common.export.jsonio import dumps, dumps_array
from common.export.native import NativeObject, box_of, class_name
from common.export.source import ExportItem
from common.export.summary import Tally
from common.export.writer import Writer, polygon_geometry

__all__ = ["CocoWriter"]

_FLUSH = 4096  # images (or annotations) encoded and written at a time


class _Categories:
    """COCO category ids: an integer class id keeps its value; a text one gets the next free id."""

    def __init__(self) -> None:
        self.by_class: dict[int | str, int] = {}
        self.rows: list[dict[str, Any]] = []
        self._next = 1

    def id_of(self, obj: NativeObject) -> int:
        cls = obj["class_id"]
        found = self.by_class.get(cls)
        if found is not None:
            return found
        taken = {r["id"] for r in self.rows}
        if isinstance(cls, int) and cls not in taken:
            cid = cls
        else:
            while self._next in taken or self._next in self.by_class:
                self._next += 1
            cid = self._next
        self.by_class[cls] = cid
        self.rows.append({"id": cid, "name": class_name(obj), "supercategory": "", "annoflow": {"class_id": cls}})
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
        # Encoded a few thousand at a time: one call per batch, one write per batch.
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []

    def open(self) -> None:
        self._out = self._partial.open("wb")
        self._anns = self._spool.open("wb")
        self._out.write(b'{"info": {"description": "annoflow export"}, "licenses": [], "images": [\n')
        self._first_image = True
        self._first_ann = True

    def write(self, item: ExportItem) -> None:
        classifications: list[NativeObject] = []
        anns = self._annotations
        written = 0
        for obj in item.objects:
            if obj["type"] == "classification":
                classifications.append(obj)
                written += 1
                continue
            ann = self._annotation(item.index, obj)
            if ann is None:
                self.tally.skip(f"{obj['type']} has no COCO form")
                continue
            anns.append(ann)
            written += 1
        self.tally.objects += written
        self._images.append({
            "id": item.index,
            "file_name": item.file_name,
            "width": round(item.width or 0),
            "height": round(item.height or 0),
            "annoflow": {
                "data_hash": item.data_hash, "title": item.title, "url": item.image_url, "stage_uuid": item.stage_uuid,
                "status": item.status, "branch": item.branch, "classifications": classifications,
            },
        })  # fmt: skip
        if len(self._images) >= _FLUSH:
            self._flush_images()
        if len(anns) >= _FLUSH:
            self._flush_annotations()

    def _flush_images(self) -> None:
        self._first_image = _flush(self._out, self._images, self._first_image)

    def _flush_annotations(self) -> None:
        self._first_ann = _flush(self._anns, self._annotations, self._first_ann)

    def _annotation(self, image_id: int, obj: NativeObject) -> dict[str, Any] | None:
        kind, c = obj["type"], obj["coordinates"]
        flat: list[float] | None = None
        if kind == "bbox":  # the usual case, without the general box_of
            x1, y1, w, h = c["x"], c["y"], c["width"], c["height"]
        elif kind == "polygon":
            x1, y1, x2, y2, flat, area = polygon_geometry(c["points"])
            w, h = x2 - x1, y2 - y1
        elif kind == "polyline" or (box := box_of(obj)) is None:
            return None
        else:
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
        self._ann_id += 1
        category = self.categories.id_of(obj)
        props = obj["properties"]
        ann: dict[str, Any] = {
            "id": self._ann_id, "image_id": image_id, "category_id": category, "bbox": [x1, y1, w, h],
            "area": w * h, "iscrowd": 1 if props.get("iscrowd") else 0,
        }  # fmt: skip
        if flat is not None:
            ann["segmentation"] = [flat]
            ann["area"] = area
        elif kind == "keypoint":
            ann["keypoints"] = [c["x"], c["y"], c.get("visibility", 2)]
            ann["num_keypoints"] = 1
        if "score" in obj:
            ann["score"] = obj["score"]
        extras: dict[str, Any] = {"id": obj["id"], "type": kind, "class_id": obj["class_id"]}
        if props:
            extras["properties"] = props
        if "provenance" in obj:
            extras["provenance"] = obj["provenance"]
        ann["annoflow"] = extras
        return ann

    def close(self) -> list[Path]:
        self._flush_images()
        self._flush_annotations()
        self._anns.close()
        self._out.write(b'\n], "annotations": [\n')
        with self._spool.open("rb") as spool:
            shutil.copyfileobj(spool, self._out, 1 << 20)
        self._out.write(b'\n], "categories": ')
        self._out.write(dumps(sorted(self.categories.rows, key=lambda r: r["id"])))
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


def _flush(out: BinaryIO, rows: list[dict[str, Any]], first: bool) -> bool:
    """Write ``rows`` as the next items of a JSON array ``out`` holds open and empty the list; still first?"""
    if not rows:
        return first
    out.write(b"" if first else b",\n")
    out.write(dumps_array(rows))
    rows.clear()
    return False
