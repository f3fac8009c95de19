"""The demo's agent: real image measurements that decide where each task goes.

``Triage`` measures mean brightness and colour saturation of each image:
too dark images are archived, colourful ones go to ``Find blobs``, the rest to
people in ``Annotate``. ``Find blobs`` thresholds saturation, labels the
connected regions and adds one bounding box per blob to the label row.

Run it with ``annoflow run --project demo --agents examples.demo_agent:runner``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from PIL import Image

from common.runner import Depends, HandlerResult, LabelRowEditor, QueueRunner, dep_asset

runner = QueueRunner(project="demo")

DARK = 60.0  # mean brightness (0-255) below which an image is too dark to annotate
COLOURFUL = 0.03  # share of strongly saturated pixels above which an image goes to blob finding
MIN_BLOB = 40  # pixels; smaller regions are noise


def load_rgb(asset: Annotated[Path, Depends(dep_asset)]) -> np.ndarray:
    """The image as an RGB array (a dependency, so each handler gets it decoded once)."""
    with Image.open(asset) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32)


def saturation(rgb: np.ndarray) -> np.ndarray:
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    return np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)


@runner.stage("Triage")
def triage(rgb: Annotated[np.ndarray, Depends(load_rgb)], label_row: LabelRowEditor) -> HandlerResult:
    brightness = float(rgb.mean())
    sat = float((saturation(rgb) > 0.5).mean())
    label_row.add(
        {
            "type": "classification",
            "class_id": "measurements",
            "properties": {"brightness": round(brightness, 1), "saturated_share": round(sat, 3)},
        }
    )
    if brightness < DARK:
        return HandlerResult(pathway="too dark", label_row=label_row, priority=0.0)
    pathway = "colourful" if sat > COLOURFUL else "plain"
    # Brighter images first for the people downstream.
    return HandlerResult(pathway=pathway, label_row=label_row, priority=round(brightness / 255, 3))


def _blobs(mask: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Connected regions of ``mask`` (4-neighbour flood fill) as (x0, y0, x1, y1, area)."""
    seen = np.zeros_like(mask, dtype=bool)
    out = []
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        stack, xs, ys = [(y, x)], [], []
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            ys.append(cy)
            xs.append(cx)
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append((min(xs), min(ys), max(xs), max(ys), len(xs)))
    return out


@runner.stage("Find blobs", include_labels=True)
def find_blobs(rgb: Annotated[np.ndarray, Depends(load_rgb)], label_row: LabelRowEditor) -> str:
    height, width = rgb.shape[:2]
    # Work on a quarter-size grid: blobs are large, and the flood fill is pure Python.
    small = saturation(rgb[::4, ::4]) > 0.5
    found = [b for b in _blobs(small) if b[4] * 16 >= MIN_BLOB]
    for x0, y0, x1, y1, area in found:
        label_row.add(
            {
                "type": "bbox",
                "class_id": "blob",
                "score": round(min(1.0, area * 16 / (width * height) * 10), 3),
                # In pixels of the full image, as the native object model and every export want them.
                "coordinates": {"x": x0 * 4, "y": y0 * 4, "width": (x1 - x0 + 1) * 4, "height": (y1 - y0 + 1) * 4},
            }
        )
    return "labelled" if found else "nothing found"
