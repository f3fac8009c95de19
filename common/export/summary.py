"""What an export wrote: the figures a caller shows, as a pydantic model, and the tally that counts them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExportSummary", "Tally"]


class ExportSummary(BaseModel):
    """The outcome of one export.

    ``skipped`` counts the objects the format cannot hold, by reason (a keypoint in a
    YOLO detection folder, a region without an image size in percent coordinates, a
    stored object that is not in the native object model), so nothing is lost unseen.
    """

    model_config = ConfigDict(frozen=True)

    format: str
    project: str
    version: int | None = None
    output: str
    files: list[str] = Field(default_factory=list, description="the main files written (not every per-image file)")
    tasks: int
    objects: int
    skipped: dict[str, int] = Field(default_factory=dict)
    classes: list[str] = Field(default_factory=list)
    seconds: float


class Tally:
    """Counts of a running export; writers add what they wrote and what they skipped."""

    def __init__(self) -> None:
        self.tasks = 0
        self.objects = 0
        self.skipped: dict[str, int] = {}

    def skip(self, reason: str, count: int = 1) -> None:
        """Count ``count`` objects left out for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + count
