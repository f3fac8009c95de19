"""Post-processing: class filter, confidence, minimum size, real NMS and max objects."""

from __future__ import annotations

import numpy as np

from common.totask.objects import AnnotationObject
from common.totask.params import PreProcessorParams
from common.totask.postprocess import iou_matrix, postprocess


def box(
    ident: str, x: float, y: float, w: float, h: float, score: float, cls: int | str = 1, label: str | None = None
) -> AnnotationObject:
    props = {"label": label} if label else {}
    coords = {"x": x, "y": y, "width": w, "height": h}
    return AnnotationObject(id=ident, class_id=cls, type="bbox", coordinates=coords, score=score, properties=props)


def pp(**kw: object) -> PreProcessorParams:
    return PreProcessorParams.model_validate(kw)


def test_iou_matrix() -> None:
    # Given two boxes overlapping by half of each, and a disjoint one
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], dtype=float)
    # When IoU is computed
    iou = iou_matrix(boxes)
    # Then overlap / union is 50 / 150, the disjoint box 0, the diagonal 1
    assert np.allclose(iou[0, 1], 1 / 3) and iou[0, 2] == 0 and np.allclose(np.diag(iou), 1)


def test_nms_suppresses_overlaps_within_a_class_only() -> None:
    # Given three overlapping boxes of class 1 and one overlapping box of class 2
    objs = [
        box("a", 0, 0, 10, 10, 0.9),
        box("b", 1, 0, 10, 10, 0.95),
        box("c", 30, 30, 10, 10, 0.5),
        box("d", 0, 0, 10, 10, 0.4, cls=2),
    ]
    # When NMS runs at 0.5
    kept = postprocess(objs, pp(nms_threshold=0.5))
    # Then the best of the overlapping pair survives, the separate box and the other class stay
    assert sorted(o.id for o in kept) == ["b", "c", "d"]
    # And at a threshold above their IoU (0.82) both stay
    assert len(postprocess(objs, pp(nms_threshold=0.9))) == 4


def test_filters_in_order() -> None:
    # Given faces and cars of various sizes and scores
    objs = [
        box("big", 0, 0, 100, 100, 0.99, label="face"),
        box("small", 200, 200, 10, 10, 0.99, label="face"),
        box("unsure", 300, 0, 50, 50, 0.3, label="face"),
        box("car", 0, 300, 80, 80, 0.97, cls=3, label="car"),
        box("mid", 400, 400, 40, 40, 0.9, label="face"),
    ]
    # When filtering by class name, confidence and minimum size, keeping at most 1
    by_name = postprocess(objs, pp(class_filter=["face"], confidence_threshold=0.5, min_object_size=20))
    top1 = postprocess(objs, pp(class_filter=[1], max_objects=1))
    # Then only the confident, large faces stay, and max_objects keeps the best score
    assert [o.id for o in by_name] == ["big", "mid"]
    assert [o.id for o in top1] == ["big"]
    # And with no parameters nothing changes
    assert postprocess(objs, pp()) == objs
