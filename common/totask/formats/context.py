"""What a format converter knows about the task whose file it converts, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.totask.objects import AnnotationObject

__all__ = ["ConvertContext", "Parsed"]


@dataclass(frozen=True)
class ConvertContext:
    """The task's side of a conversion: its image size and the names its image goes by.

    ``width``/``height`` come from the data unit's meta when known; ``names`` (title,
    original file names) pick this task's image out of a multi-image COCO file.
    """

    width: float | None = None
    height: float | None = None
    names: tuple[str, ...] = ()
    source: str = "annotation file"


@dataclass
class Parsed:
    """Converted objects and the image size the file itself declared, if any."""

    objects: list[AnnotationObject] = field(default_factory=list)
    width: float | None = None
    height: float | None = None
