"""What every format writer shares: the streaming interface, class naming, and image links.

A writer is opened on its target, receives the export items a page at a time and
is closed once; it keeps only what the format needs at the end (class names,
a few counters), never the items themselves.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from common.export.native import NativeObject, class_name
from common.export.paths import member, safe_stem
from common.export.source import ExportItem, local_path
from common.export.summary import Tally

__all__ = ["ClassMap", "FileNames", "Writer", "link_image", "polygon_geometry"]


class Writer(ABC):
    """A format's writer: :meth:`open`, :meth:`write` per item, :meth:`close`.

    ``folder`` tells whether the target is a folder (YOLO, VOC) or one file.
    """

    name: ClassVar[str]
    folder: ClassVar[bool] = False

    def __init__(self, target: Path, tally: Tally) -> None:
        self.target = target
        self.tally = tally
        self.classes = ClassMap()

    @abstractmethod
    def open(self) -> None:
        """Create the target and write any header."""

    @abstractmethod
    def write(self, item: ExportItem) -> None:
        """Write one data unit with its objects; count objects written and skipped in the tally."""

    @abstractmethod
    def close(self) -> list[Path]:
        """Finish the output (footers, class lists); return the main files written."""

    @staticmethod
    def companions(target: Path) -> list[Path]:
        """Files written beside a single-file target (they count as the output too)."""
        return []

    def abort(self) -> None:
        """Leave no half-written main file behind after a failure (the default: nothing to do)."""
        return None


class ClassMap:
    """Class ids in first-seen order, each with its name and a contiguous 0-based index."""

    def __init__(self) -> None:
        self._index: dict[int | str, int] = {}
        self.names: list[str] = []
        self.ids: list[int | str] = []

    def index(self, obj: NativeObject) -> int:
        """The 0-based index of the object's class (a new class gets the next one)."""
        cls = obj["class_id"]
        found = self._index.get(cls)
        if found is None:
            found = self._index[cls] = len(self.names)
            self.names.append(class_name(obj))
            self.ids.append(cls)
        return found


class FileNames:
    """Unique, safe file stems for the images of a folder export, found without a set in memory.

    A stem already taken (two units called ``img.jpg`` in different datasets) gets the
    item's position appended; the label file on disk is what tells it is taken.
    """

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix

    def stem(self, item: ExportItem) -> str:
        stem = safe_stem(item.file_name, f"item_{item.index}")
        if member(self.folder, stem + self.suffix).exists():
            stem = f"{stem}_{item.index}"
        return stem


def link_image(images: Path, stem: str, item: ExportItem) -> str | None:
    """Link a local image into ``images`` as ``stem`` + its suffix; return the link's name.

    Returns None for a remote or missing image: the caller lists its URL instead.
    """
    path = local_path(item.image_url)
    if path is None or not path.is_file():
        return None
    name = stem + (path.suffix.lower() or ".jpg")
    link = member(images, name)
    if not link.exists():
        os.symlink(path.resolve(), link)
    return name


def polygon_geometry(points: list[list[float]]) -> tuple[float, float, float, float, list[float], float]:
    """A polygon's box ``(x1, y1, x2, y2)``, its flat ``[x1, y1, x2, y2, ...]`` vertices and its area.

    One loop for all three: four times faster than comprehensions and min/max (COCO writes every polygon).
    """
    flat: list[float] = []
    total = 0.0
    px, py = points[-1]
    x1 = x2 = px
    y1 = y2 = py
    for x, y in points:
        flat.append(x)
        flat.append(y)
        total += px * y - x * py
        px, py = x, y
        if x < x1:
            x1 = x
        elif x > x2:
            x2 = x
        if y < y1:
            y1 = y
        elif y > y2:
            y2 = y
    return x1, y1, x2, y2, flat, abs(total) / 2.0
