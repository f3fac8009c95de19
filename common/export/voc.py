"""Pascal VOC: one ``Annotations/<image>.xml`` per image, local images linked into ``JPEGImages/``.

Boxes are ``<bndbox>`` corners in VOC's 1-based pixel convention (``xmin = x + 1``,
``xmax = x + width``, as the devkit and supervision read them; decimals kept, as
sub-pixel exporters write them); a polygon is an object with its bounding box and a ``<polygon>`` of
``x1 y1 x2 y2 ...`` vertices, which supervision and CVAT read. VOC has no score
and no keypoints: a score goes into the object's ``<confidence>`` and keypoints,
polylines and classifications are counted as skipped.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent

from common.export.native import NativeObject, box_of, class_name
from common.export.paths import member
from common.export.source import ExportItem
from common.export.summary import Tally
from common.export.writer import FileNames, Writer, link_image

__all__ = ["VocWriter"]


def _text(parent: Element, tag: str, value: object) -> Element:
    child = SubElement(parent, tag)
    child.text = str(value)
    return child


def _coord(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}".rstrip("0")


class VocWriter(Writer):
    """A Pascal VOC folder."""

    name = "voc"
    folder = True

    def __init__(self, target: Path, tally: Tally) -> None:
        super().__init__(target, tally)
        self.annotations = target / "Annotations"
        self.images = target / "JPEGImages"
        self._names = FileNames(self.annotations, ".xml")

    def open(self) -> None:
        self.annotations.mkdir(parents=True)
        self.images.mkdir()
        self._listing = (self.target / "images.txt").open("w", encoding="utf-8")

    def _object(self, root: Element, obj: NativeObject) -> bool:
        box = box_of(obj)
        if box is None or obj["type"] not in ("bbox", "polygon"):
            return False
        self.classes.index(obj)
        node = SubElement(root, "object")
        _text(node, "name", class_name(obj))
        _text(node, "pose", "Unspecified")
        _text(node, "truncated", 0)
        _text(node, "difficult", 1 if obj["properties"].get("difficult") else 0)
        if "score" in obj:
            _text(node, "confidence", obj["score"])
        bnd = SubElement(node, "bndbox")
        x1, y1, x2, y2 = box
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x1 + 1, y1 + 1, x2, y2), strict=True):
            _text(bnd, tag, _coord(v))
        if obj["type"] == "polygon":
            poly = SubElement(node, "polygon")
            for i, (x, y) in enumerate(obj["coordinates"]["points"], start=1):
                _text(poly, f"x{i}", _coord(x + 1))
                _text(poly, f"y{i}", _coord(y + 1))
        return True

    def write(self, item: ExportItem) -> None:
        stem = self._names.stem(item)
        linked = link_image(self.images, stem, item)
        root = Element("annotation")
        _text(root, "folder", "JPEGImages")
        _text(root, "filename", linked or item.file_name)
        _text(root, "path", item.image_url)
        source = SubElement(root, "source")
        _text(source, "database", "annoflow")
        _text(source, "data_hash", item.data_hash)
        size = SubElement(root, "size")
        _text(size, "width", round(item.width or 0))
        _text(size, "height", round(item.height or 0))
        _text(size, "depth", 3)
        _text(root, "segmented", int(any(o["type"] == "polygon" for o in item.objects)))
        for obj in item.objects:
            if self._object(root, obj):
                self.tally.objects += 1
            else:
                self.tally.skip(f"{obj['type']} has no Pascal VOC form")
        indent(root)
        ElementTree(root).write(member(self.annotations, stem + ".xml"), encoding="utf-8", xml_declaration=True)
        self._listing.write(f"{'JPEGImages/' + linked if linked else item.image_url}\n")

    def close(self) -> list[Path]:
        self._listing.close()
        names = self.target / "labels.txt"
        names.write_text("".join(f"{n}\n" for n in self.classes.names), encoding="utf-8")
        return [self.annotations, names, self.target / "images.txt"]

    def abort(self) -> None:
        self._listing.close()
