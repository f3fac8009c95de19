"""A YOLO folder: ``labels/<image>.txt`` in normalised coordinates, ``data.yaml`` with the class names.

Boxes are written as ``class cx cy w h``; polygons as ``class x1 y1 x2 y2 ...`` (the
segmentation form, which Ultralytics and supervision read beside boxes). Local
images are linked into ``images/``; every image's URL is also listed in
``images.txt``. Keypoints, polylines and classifications have no place in a
detection folder and are counted as skipped; so are the objects of an image whose
size is unknown (normalising needs it).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from common.export.native import NativeObject
from common.export.paths import member
from common.export.source import NO_SIZE, ExportItem
from common.export.summary import Tally
from common.export.writer import FileNames, Writer, link_image

__all__ = ["YoloWriter"]


def _num(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


class YoloWriter(Writer):
    """A YOLO detection / segmentation dataset folder."""

    name = "yolo"
    folder = True

    def __init__(self, target: Path, tally: Tally) -> None:
        super().__init__(target, tally)
        self.labels = target / "labels"
        self.images = target / "images"
        self._names = FileNames(self.labels, ".txt")

    def open(self) -> None:
        self.labels.mkdir(parents=True)
        self.images.mkdir()
        self._listing = (self.target / "images.txt").open("w", encoding="utf-8")

    def _line(self, obj: NativeObject, w: float, h: float) -> str | None:
        c, kind = obj["coordinates"], obj["type"]
        if kind == "bbox":
            cx, cy = (c["x"] + c["width"] / 2) / w, (c["y"] + c["height"] / 2) / h
            values = [cx, cy, c["width"] / w, c["height"] / h]
        elif kind == "polygon":
            values = [v for x, y in c["points"] for v in (x / w, y / h)]
        else:
            return None
        return " ".join([str(self.classes.index(obj)), *map(_num, values)])

    def write(self, item: ExportItem) -> None:
        stem = self._names.stem(item)
        lines = []
        for obj in item.objects:
            if not (item.width and item.height):
                self.tally.skip(NO_SIZE)
                continue
            line = self._line(obj, item.width, item.height)
            if line is None:
                self.tally.skip(f"{obj['type']} has no YOLO detection form")
                continue
            lines.append(line)
        member(self.labels, stem + ".txt").write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
        self.tally.objects += len(lines)
        linked = link_image(self.images, stem, item)
        self._listing.write(f"{'images/' + linked if linked else item.image_url}\n")

    def close(self) -> list[Path]:
        self._listing.close()
        data = {
            "path": str(self.target),
            "train": "images",
            "val": "images",
            "nc": len(self.classes.names),
            "names": dict(enumerate(self.classes.names)),
            "annoflow_class_ids": dict(enumerate(self.classes.ids)),
        }
        data_yaml = self.target / "data.yaml"
        data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return [data_yaml, self.target / "images.txt"]

    def abort(self) -> None:
        self._listing.close()
