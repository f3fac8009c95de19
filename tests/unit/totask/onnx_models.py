"""Tiny ONNX detectors built at test time with the ``onnx`` helper API (nothing downloaded).

The image is cut into ``cell``-pixel squares; each square is one anchor whose box is the
square and whose class scores are the mean of the R, G and B planes over it (so on a black
image a pure red square is class 0 with score 1). Outputs come YOLO-style or as
boxes/scores/classes, over a dynamic batch axis unless a fixed batch is asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASS_NAMES = ["red", "green", "blue"]
OPSET = 17


def _anchor_boxes(size: int, cell: int) -> np.ndarray:
    """``(A, 4)`` cx, cy, w, h of each cell, row by row."""
    g = size // cell
    ys, xs = np.mgrid[0:g, 0:g]
    cx = (xs.ravel() + 0.5) * cell
    cy = (ys.ravel() + 0.5) * cell
    wh = np.full(g * g, float(cell))
    return np.stack([cx, cy, wh, wh], axis=1).astype(np.float32)


def _graph_start(size: int, cell: int, batch: int | str, spatial: bool) -> tuple[list, list, object]:
    h_w: list[int | str] = [size, size] if spatial else ["h", "w"]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *h_w])
    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[cell, cell], strides=[cell, cell]),
        helper.make_node("Reshape", ["pooled", "shape_nca"], ["cls"]),  # (N, 3, A)
        # (N, 1, 1) zeros, so constant boxes broadcast over the batch axis.
        helper.make_node("ReduceMean", ["cls"], ["mean"], axes=[1, 2], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 3, -1], np.int64), "shape_nca"),
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
    ]
    return nodes, inits, inp


def yolo_model(
    path: Path,
    *,
    size: int = 64,
    cell: int = 16,
    layout: str = "v8",
    batch: int | str = "batch",
    spatial: bool = True,
    names_metadata: list[str] | None = None,
) -> Path:
    """A YOLO-style detector: ``(N, 7, A)`` for v8, ``(N, A, 7)`` for v8t, ``(N, A, 8)`` for v5."""
    nodes, inits, inp = _graph_start(size, cell, batch, spatial)
    boxes = _anchor_boxes(size, cell).T[None]  # (1, 4, A)
    inits.append(numpy_helper.from_array(boxes, "anchors"))
    nodes.append(helper.make_node("Add", ["zeros", "anchors"], ["boxes"]))  # (N, 4, A)
    parts = ["boxes", "cls"]
    if layout == "v5":
        inits.append(numpy_helper.from_array(np.ones((1, 1, boxes.shape[2]), np.float32), "one_obj"))
        nodes.append(helper.make_node("Add", ["zeros", "one_obj"], ["obj"]))
        parts = ["boxes", "obj", "cls"]
    nodes.append(helper.make_node("Concat", parts, ["cat"], axis=1))
    channels = 4 + len(CLASS_NAMES) + (1 if layout == "v5" else 0)
    anchors = boxes.shape[2]
    if layout == "v8":
        nodes.append(helper.make_node("Identity", ["cat"], ["output0"]))
        shape: list[int | str] = [batch, channels, anchors]
    else:
        nodes.append(helper.make_node("Transpose", ["cat"], ["output0"], perm=[0, 2, 1]))
        shape = [batch, anchors, channels]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)
    model = helper.make_model(
        helper.make_graph(nodes, "tiny_yolo", [inp], [out], inits), opset_imports=[helper.make_opsetid("", OPSET)]
    )
    if names_metadata is not None:
        names = "{" + ", ".join(f"{i}: {n!r}" for i, n in enumerate(names_metadata)) + "}"
        helper.set_model_props(model, {"names": names})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def boxes_model(path: Path, *, size: int = 64, cell: int = 16, batch: int | str = "batch") -> Path:
    """A boxes/scores/classes detector: ``boxes (N, A, 4)`` xyxy, ``scores (N, A)``, ``classes (N, A)`` int64."""
    nodes, inits, inp = _graph_start(size, cell, batch, True)
    cxcywh = _anchor_boxes(size, cell)
    xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
    inits.append(numpy_helper.from_array(xyxy[None].astype(np.float32), "anchors"))  # (1, A, 4)
    nodes += [
        helper.make_node("Add", ["zeros", "anchors"], ["det_boxes"]),
        helper.make_node("ReduceMax", ["cls"], ["det_scores"], axes=[1], keepdims=0),
        helper.make_node("ArgMax", ["cls"], ["det_classes"], axis=1, keepdims=0),
    ]
    a = cxcywh.shape[0]
    outs = [
        helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, [batch, a, 4]),
        helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, [batch, a]),
        helper.make_tensor_value_info("det_classes", TensorProto.INT64, [batch, a]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "tiny_boxes", [inp], outs, inits), opset_imports=[helper.make_opsetid("", OPSET)]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def square_image(
    width: int = 128, height: int = 128, box: tuple[int, int, int, int] = (32, 0, 64, 32), color: str = "red"
) -> bytes:
    """PNG bytes: a black image with one filled square ``x1, y1, x2, y2`` in ``color``."""
    import cv2

    img = np.zeros((height, width, 3), np.uint8)
    bgr = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}[color]
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = bgr
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf.tobytes())
