"""Images into a detector's input tensor, and the detector's boxes back onto the image.

Letterboxing keeps the aspect ratio: the image is scaled to fit the input and the rest
is padded (grey 114, as YOLO trains). ``Placement`` remembers the scale and padding, so
boxes in input pixels map back to the original image's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from common.errors import InvalidInputError
from common.totask.preprocessors.base import InferenceItem
from common.totask.preprocessors.detector_params import DetectorParams

__all__ = [
    "DEFAULT_SIZE",
    "Placement",
    "decode_color",
    "input_geometry",
    "place",
    "place_all",
    "to_tensor",
    "unplace",
]

DEFAULT_SIZE = 640
"""Input width and height when neither the model nor ``input_size`` fixes them (YOLO's)."""


@dataclass(frozen=True)
class Placement:
    """Where the original image sits inside the input: ``input = original * scale + pad``."""

    width: int
    height: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float


def _dims(shape: Sequence[object]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in shape) + ")"


def input_geometry(
    name: str, shape: Sequence[object], dp: DetectorParams, who: str
) -> tuple[tuple[int, int], int | None]:
    """The input size (width, height) and fixed batch (None: dynamic) for an image input of ``shape``.

    Dimensions that are not positive ints (``None``, ``-1``, ``"batch"``) are dynamic.

    Raises:
        InvalidInputError: the input is not ``(batch, 3, H, W)``, or ``input_size`` contradicts it.
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 4 or dims[1] not in (None, 3):
        raise InvalidInputError(
            f"{who}: input {name!r} is {_dims(shape)}, not (batch, 3, height, width); "
            "export the detector with an NCHW RGB image input"
        )
    fixed_h, fixed_w = dims[2], dims[3]
    if dp.input_size is None:
        return (fixed_w or DEFAULT_SIZE, fixed_h or DEFAULT_SIZE), dims[0]
    w, h = dp.input_size
    if (fixed_w is not None and fixed_w != w) or (fixed_h is not None and fixed_h != h):
        raise InvalidInputError(
            f"{who}: input_size is {w}x{h} but the model's input {name!r} is {_dims(shape)}; "
            f"set input_size to {fixed_w or w}x{fixed_h or h} or export the model at that size"
        )
    return (w, h), dims[0]


def decode_color(data: bytes, source: str) -> np.ndarray:
    """Decode image bytes to an ``(H, W, 3)`` BGR uint8 array.

    Raises:
        InvalidInputError: the bytes are not an image OpenCV can read.
    """
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidInputError(f"Cannot decode image {source}: not a PNG/JPEG/BMP/TIFF/WebP image; check the file")
    return img


def place(img: np.ndarray, size: tuple[int, int], p: DetectorParams) -> tuple[np.ndarray, Placement]:
    """Resize (and pad) a BGR image to ``size`` (width, height); answer the ``(3, H, W)`` float32 planes."""
    h, w = img.shape[:2]
    tw, th = size
    if p.letterbox:
        s = min(tw / w, th / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        sx, sy = nw / w, nh / h
        px, py = (tw - nw) / 2, (th - nh) / 2
        canvas: np.ndarray = np.full((th, tw, 3), p.pad_value, dtype=np.uint8)
        left, top = round(px - 0.1), round(py - 0.1)  # as Ultralytics rounds the two halves
        canvas[top : top + nh, left : left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        px, py = float(left), float(top)
    else:
        sx, sy, px, py = tw / w, th / h, 0.0, 0.0
        canvas = cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)
    if p.channel_order == "rgb":
        canvas = canvas[:, :, ::-1]
    planes = canvas.transpose(2, 0, 1).astype(np.float32)
    planes *= np.float32(p.scale)
    mean = np.asarray(p.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(p.std, dtype=np.float32).reshape(3, 1, 1)
    if p.mean != (0.0, 0.0, 0.0) or p.std != (1.0, 1.0, 1.0):
        planes = (planes - mean) / std
    return planes, Placement(w, h, sx, sy, px, py)


def place_all(
    items: Sequence[InferenceItem], size: tuple[int, int], p: DetectorParams, pool: ThreadPoolExecutor
) -> list[tuple[np.ndarray, Placement]]:
    """Decode and place a batch's images, one per thread (OpenCV lets go of the GIL).

    Raises:
        InvalidInputError: an item without bytes, or bytes that are not an image.
    """

    def one(item: InferenceItem) -> tuple[np.ndarray, Placement]:
        if item.data is None:
            raise InvalidInputError(f"no image bytes for task {item.task_uuid}; the strategy must download them")
        return place(decode_color(item.data, item.url), size, p)

    return list(pool.map(one, items)) if len(items) > 1 else [one(it) for it in items]


def to_tensor(planes: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``(3, H, W)`` planes into one contiguous ``(N, 3, H, W)`` batch."""
    return np.ascontiguousarray(np.stack(planes, axis=0))


def unplace(boxes: np.ndarray, at: Placement) -> np.ndarray:
    """Map ``(K, 4)`` ``x1, y1, x2, y2`` boxes in input pixels to the original image, clipped to it."""
    out = np.empty_like(boxes, dtype=np.float64)
    out[:, [0, 2]] = (boxes[:, [0, 2]] - at.pad_x) / at.scale_x
    out[:, [1, 3]] = (boxes[:, [1, 3]] - at.pad_y) / at.scale_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, at.width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, at.height)
    return out
