"""Detector output tensors into boxes: YOLO-style single tensors and boxes/scores/classes sets.

YOLO layouts (boxes are ``cx, cy, w, h`` in input pixels):

* ``(N, 4+C, A)``: YOLOv8/v11 (class scores, no objectness), the usual export;
* ``(N, A, 4+C)``: the same, transposed;
* ``(N, A, 5+C)``: YOLOv5/v7 (objectness times class probability).

The generic set is ``boxes (N, K, 4)``, ``scores (N, K)`` and ``classes (N, K)``
(or ``scores (N, K, C)`` without classes), optionally a ``num (N[, 1])`` count, as
TensorRT's EfficientNMS and TF object-detection exports answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from common.errors import InvalidInputError

__all__ = ["Detections", "YoloLayout", "decode_boxes", "decode_yolo", "nms_indices", "yolo_layout"]

YoloLayout = Literal["v8", "v8t", "v5"]


@dataclass(frozen=True)
class Detections:
    """One image's detections: ``(K, 4)`` ``x1, y1, x2, y2`` in input pixels, scores and class ids."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def yolo_layout(shape: tuple[int | str | None, ...], n_classes: int | None) -> tuple[YoloLayout, int]:
    """Which YOLO layout an output of ``shape`` is, and its class count.

    Raises:
        InvalidInputError: not a 3-D output, or no layout holds ``n_classes`` classes.
    """
    if len(shape) != 3:
        raise InvalidInputError(
            f"YOLO output must be 3-D (batch, 4+classes, anchors), got shape {list(shape)}; "
            "set output_format to 'boxes' for a boxes/scores/classes model"
        )
    d1, d2 = shape[1], shape[2]
    if n_classes is None:
        if isinstance(d1, int) and isinstance(d2, int) and d1 >= 5 and d1 < d2:
            return "v8", d1 - 4
        if isinstance(d2, int) and d2 >= 6:
            return "v5", d2 - 5
        raise InvalidInputError(f"cannot tell the YOLO layout of output shape {list(shape)}; give class_names")
    if d1 == 4 + n_classes and d2 != 4 + n_classes:
        return "v8", n_classes
    if d2 == 5 + n_classes:
        return "v5", n_classes
    if d2 == 4 + n_classes:
        return "v8t", n_classes
    held = [n for n in (_int(d1, 4), _int(d2, 5), _int(d2, 4)) if n is not None and n > 0]
    hint = f"it holds {' or '.join(str(n) for n in dict.fromkeys(held))} classes" if held else "it holds no classes"
    raise InvalidInputError(
        f"class_names lists {n_classes} classes but the model output is {list(shape)}: {hint}; "
        "give the model's class names, in its order"
    )


def _int(dim: int | str | None, less: int) -> int | None:
    return dim - less if isinstance(dim, int) else None


def nms_indices(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, limit: int) -> np.ndarray:
    """Greedy per-class NMS over ``x1, y1, x2, y2`` boxes; the kept indices, best first, at most ``limit``."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    # Shift each class far apart so one pass suppresses only within a class.
    shifted = boxes + (classes.astype(np.float64) * (float(boxes.max(initial=0.0)) + 1.0))[:, None]
    x1, y1, x2, y2 = shifted.T
    area = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        ih = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = iw * ih
        union = area[i] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(cxcywh)
    out[:, :2] = cxcywh[:, :2] - cxcywh[:, 2:4] / 2
    out[:, 2:] = cxcywh[:, :2] + cxcywh[:, 2:4] / 2
    return out


def decode_yolo(output: np.ndarray, layout: YoloLayout, conf: float, iou: float, max_det: int) -> list[Detections]:
    """Decode a batch of YOLO outputs: confidence filter, then per-class NMS, per image."""
    rows = output.transpose(0, 2, 1) if layout == "v8" else output  # (N, A, 4+C | 5+C)
    out = []
    for r in rows:
        cls_scores = r[:, 5:] * r[:, 4:5] if layout == "v5" else r[:, 4:]
        classes = cls_scores.argmax(axis=1)
        scores = cls_scores[np.arange(len(classes)), classes]
        hit = scores >= conf
        if not hit.any():
            out.append(Detections.empty())
            continue
        boxes = _xyxy(r[hit, :4].astype(np.float64))
        scores, classes = scores[hit], classes[hit]
        keep = nms_indices(boxes, scores, classes, iou, max_det)
        out.append(Detections(boxes[keep], scores[keep], classes[keep]))
    return out


def decode_boxes(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    num: np.ndarray | None,
    conf: float,
    box_format: str,
    scale: tuple[float, float],
    max_det: int,
) -> list[Detections]:
    """Decode a batch of boxes/scores/classes outputs (already suppressed by the model).

    ``scale`` multiplies normalised coordinates back to input pixels ((1, 1) when they are pixels).

    Raises:
        InvalidInputError: shapes that do not line up.
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise InvalidInputError(f"boxes output must be (batch, K, 4), got {list(boxes.shape)}; check outputs.boxes")
    if classes is None:
        if scores.ndim != 3:
            raise InvalidInputError("no classes output and scores are not (batch, K, classes); name outputs.classes")
        classes = scores.argmax(axis=2)
        scores = scores.max(axis=2)
    scores = scores.reshape(scores.shape[0], -1)
    classes = classes.reshape(classes.shape[0], -1)
    if not boxes.shape[:2] == scores.shape == classes.shape:
        raise InvalidInputError(
            f"boxes {list(boxes.shape)}, scores {list(scores.shape)} and classes {list(classes.shape)} "
            "do not line up; each needs (batch, K)"
        )
    out = []
    for n in range(boxes.shape[0]):
        count = int(np.ravel(num[n])[0]) if num is not None else boxes.shape[1]
        b = boxes[n, :count].astype(np.float64)
        if box_format == "xywh":
            b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
        elif box_format == "cxcywh":
            b = _xyxy(b)
        b *= np.array([scale[0], scale[1], scale[0], scale[1]])
        s = scores[n, :count].astype(np.float64)
        c = classes[n, :count].astype(np.int64)
        hit = np.flatnonzero(s >= conf)
        hit = hit[np.argsort(-s[hit], kind="stable")][:max_det]
        out.append(Detections(b[hit], s[hit], c[hit]))
    return out
