"""Post-processing of predicted objects: class filter, confidence, size, NMS, top-k.

Applied in this order, so NMS only compares objects that survive the cheap filters and
``max_objects`` keeps the best of what NMS leaves.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from common.totask.objects import AnnotationObject, bbox_of
from common.totask.params import PreProcessorParams

__all__ = ["iou_matrix", "nms", "postprocess"]


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union of ``(n, 4)`` boxes ``x1, y1, x2, y2``."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iw = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = iw * ih
    union = area[:, None] + area[None, :] - inter
    out: np.ndarray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return out


def nms(objects: list[AnnotationObject], threshold: float) -> list[AnnotationObject]:
    """Greedy non-maximum suppression per class: drop boxes overlapping a better one by > threshold.

    Objects without a box (classifications) pass through untouched.
    """
    by_class: dict[str, list[AnnotationObject]] = defaultdict(list)
    kept: list[AnnotationObject] = []
    for obj in objects:
        if bbox_of(obj) is None:
            kept.append(obj)
        else:
            by_class[str(obj.class_id)].append(obj)
    for group in by_class.values():
        group.sort(key=lambda o: -(o.score if o.score is not None else 1.0))
        boxes = np.array([bbox_of(o) for o in group], dtype=np.float64)
        iou = iou_matrix(boxes)
        alive = np.ones(len(group), dtype=bool)
        for i in range(len(group)):
            if alive[i]:
                kept.append(group[i])
                alive[i + 1 :] &= iou[i, i + 1 :] <= threshold
    return kept


def _in_class_filter(obj: AnnotationObject, wanted: set[str]) -> bool:
    # A filter entry matches the class id or the class name, so [1, 2] and ["face"] both work.
    return str(obj.class_id) in wanted or (obj.label is not None and obj.label in wanted)


def _big_enough(obj: AnnotationObject, min_size: float) -> bool:
    box = bbox_of(obj)
    if box is None or obj.type == "keypoint":
        return True  # size means nothing for a point or a whole-image class
    return min(box[2] - box[0], box[3] - box[1]) >= min_size


def postprocess(objects: list[AnnotationObject], params: PreProcessorParams) -> list[AnnotationObject]:
    """Apply ``class_filter``, ``confidence_threshold``, ``min_object_size``, ``nms_threshold``, ``max_objects``."""
    out = objects
    if params.class_filter is not None:
        wanted = {str(c) for c in params.class_filter}
        out = [o for o in out if _in_class_filter(o, wanted)]
    if params.confidence_threshold is not None:
        # Objects without a score (hand-made files) are not the model's guesses: keep them.
        out = [o for o in out if o.score is None or o.score >= params.confidence_threshold]
    if params.min_object_size:
        out = [o for o in out if _big_enough(o, params.min_object_size)]
    if params.nms_threshold is not None:
        out = nms(out, params.nms_threshold)
    if params.max_objects is not None and len(out) > params.max_objects:
        out = sorted(out, key=lambda o: -(o.score if o.score is not None else 1.0))[: params.max_objects]
    return out
