"""An example Label Studio ML backend model: finds the one bright square drawn on a dark image.

``label-studio-ml init DIR --script bright_square.py:BrightSquare`` copies this file
into DIR beside the package's ``_wsgi.py``, so it imports nothing from annoflow. The
server fetches each task's image by URL (``label_studio_tools``' downloader, as Label
Studio's own backends do) and answers one prediction per task: a ``rectanglelabels``
region in percent of the image, scored by the square's mean brightness, with the
model's version on the prediction.
"""

from __future__ import annotations

from typing import Any

from label_studio_ml.model import LabelStudioMLBase
from label_studio_tools.core.utils.io import get_local_path
from PIL import Image

VERSION = "bright-square-1"
BRIGHT = 200  # a pixel at least this bright (0-255, grey) belongs to the square


class BrightSquare(LabelStudioMLBase):  # type: ignore[misc]
    """One ``square`` per image: the bounding box of the pixels brighter than ``BRIGHT``; none on a dark image."""

    def __init__(self, cache_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache_dir = cache_dir

    def predict(self, tasks: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        return [self._one(task["data"]["image"]) for task in tasks]

    def _one(self, url: str) -> dict[str, Any]:
        img = Image.open(get_local_path(url, cache_dir=self.cache_dir)).convert("L")
        width, height = img.size
        box = img.point(lambda v: 255 if v >= BRIGHT else 0).getbbox()
        if box is None:
            return {"model_version": VERSION, "score": 0.0, "result": []}
        left, top, right, bottom = box
        pixels = list(img.crop(box).getdata())
        score = round(sum(pixels) / len(pixels) / 255, 4)
        region = {
            "id": "square-1",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "score": score,
            "value": {
                "x": 100 * left / width,
                "y": 100 * top / height,
                "width": 100 * (right - left) / width,
                "height": 100 * (bottom - top) / height,
                "rotation": 0,
                "rectanglelabels": ["square"],
            },
        }
        return {"model_version": VERSION, "score": score, "result": [region]}
