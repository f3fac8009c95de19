"""JSON Lines for scripts: one data unit per line with its task state, image, objects and their provenance."""

from __future__ import annotations

from pathlib import Path

from common.export.jsonio import dumps
from common.export.source import ExportItem
from common.export.summary import Tally
from common.export.writer import Writer

__all__ = ["JsonlWriter"]


class JsonlWriter(Writer):
    """One ``.jsonl`` file; each line reads back as ``json.loads`` of one data unit.

    The objects are the native ones (``id``, ``class_id``, ``type``, ``coordinates`` in
    pixels, ``properties``, ``score``, ``provenance``), as ToTask's native format reads them.
    """

    name = "jsonl"

    def __init__(self, target: Path, tally: Tally) -> None:
        super().__init__(target, tally)
        self._partial = target.with_name(target.name + ".partial")

    def open(self) -> None:
        self._out = self._partial.open("wb", buffering=1 << 20)

    def write(self, item: ExportItem) -> None:
        for obj in item.objects:
            self.classes.index(obj)
        line = {
            "data_hash": item.data_hash, "title": item.title, "stage_uuid": item.stage_uuid, "status": item.status,
            "branch": item.branch, "image": {"url": item.image_url, "file_name": item.file_name,
                                             "width": item.width, "height": item.height},
            "files": item.files, "meta": item.meta, "objects": item.objects,
        }  # fmt: skip
        self._out.write(dumps(line) + b"\n")
        self.tally.objects += len(item.objects)

    def close(self) -> list[Path]:
        self._out.close()
        self._partial.replace(self.target)
        return [self.target]

    def abort(self) -> None:
        self._out.close()
        self._partial.unlink(missing_ok=True)
