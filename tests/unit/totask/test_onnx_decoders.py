"""The output decoders on hand-made tensors: YOLO layouts, boxes/scores/classes, NMS, class counts."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import InvalidInputError
from common.totask.preprocessors.onnx_decoders import decode_boxes, decode_yolo, nms_indices, yolo_layout


def _v8(rows: list[list[float]]) -> np.ndarray:
    """(1, 4+C, A) from per-anchor rows cx, cy, w, h, scores..."""
    return np.asarray(rows, np.float32).T[None]


def test_yolo_layouts_are_told_apart_by_the_class_count() -> None:
    # Given outputs of YOLOv8 (N, 84, 8400), its transpose and YOLOv5 (N, 25200, 85)
    # When their layouts are asked for with 80 classes
    # Then each is recognised
    assert yolo_layout((1, 84, 8400), 80) == ("v8", 80)
    assert yolo_layout((1, 8400, 84), 80) == ("v8t", 80)
    assert yolo_layout((1, 25200, 85), 80) == ("v5", 80)
    assert yolo_layout(("batch", 84, 8400), None) == ("v8", 80)


def test_a_class_list_that_does_not_match_the_output_is_refused_in_one_line() -> None:
    # Given a YOLOv8 output of 80 classes
    # When 3 class names are given
    with pytest.raises(InvalidInputError) as info:
        yolo_layout((1, 84, 8400), 3)
    # Then the message says what the model holds
    msg = str(info.value)
    assert "class_names lists 3 classes" in msg and "holds 80" in msg and "\n" not in msg


def test_yolo_v8_decoding_filters_by_confidence_and_suppresses_overlaps() -> None:
    # Given three anchors: two overlapping boxes of class 0 and a weak class-1 box
    out = _v8([[50, 50, 20, 20, 0.9, 0.1], [52, 50, 20, 20, 0.8, 0.1], [10, 10, 4, 4, 0.1, 0.2]])
    # When decoded at confidence 0.25 and IoU 0.45
    (dets,) = decode_yolo(out, "v8", 0.25, 0.45, 300)
    # Then only the best of the overlapping pair is left, as x1, y1, x2, y2
    assert len(dets) == 1
    np.testing.assert_allclose(dets.boxes[0], [40, 40, 60, 60])
    assert dets.classes.tolist() == [0] and dets.scores[0] == pytest.approx(0.9)


def test_yolo_v5_scores_are_objectness_times_class() -> None:
    # Given a v5 row with objectness 0.5 and class scores 0.2, 0.9
    out = np.asarray([[[30, 30, 10, 10, 0.5, 0.2, 0.9]]], np.float32)
    # When decoded
    (dets,) = decode_yolo(out, "v5", 0.25, 0.45, 300)
    # Then the score is 0.45 for class 1
    assert dets.classes.tolist() == [1] and dets.scores[0] == pytest.approx(0.45)


def test_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    # Given two identical boxes of different classes
    boxes = np.asarray([[0, 0, 10, 10], [0, 0, 10, 10]], np.float64)
    # When suppressed
    keep = nms_indices(boxes, np.asarray([0.9, 0.8]), np.asarray([0, 1]), 0.45, 10)
    # Then both stay
    assert sorted(keep.tolist()) == [0, 1]


def test_boxes_scores_classes_honour_a_count_normalised_boxes_and_xywh() -> None:
    # Given two images of two detections each, normalised xywh boxes, the second image counting one
    boxes = np.asarray([[[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]]] * 2, np.float32)
    scores = np.asarray([[0.9, 0.3]] * 2, np.float32)
    classes = np.asarray([[2, 1]] * 2, np.float32)
    num = np.asarray([[2], [1]])
    # When decoded on a 100x50 input at confidence 0.5
    dets = decode_boxes(boxes, scores, classes, num, 0.5, "xywh", (100.0, 50.0), 300)
    # Then each image keeps its confident box, in input pixels
    assert [len(d) for d in dets] == [1, 1]
    np.testing.assert_allclose(dets[0].boxes[0], [10, 5, 30, 15])
    assert dets[0].classes.tolist() == [2]


def test_boxes_with_misaligned_scores_are_refused() -> None:
    # Given 3 boxes but 2 scores
    # When decoded
    # Then the shapes are named
    with pytest.raises(InvalidInputError, match="do not line up"):
        decode_boxes(np.zeros((1, 3, 4)), np.zeros((1, 2)), np.zeros((1, 2)), None, 0.5, "xyxy", (1.0, 1.0), 10)
