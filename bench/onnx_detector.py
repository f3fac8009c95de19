"""A small YOLOv8-shaped ONNX detector, built at bench time with the ``onnx`` helper API (no download).

Four stride-2 3x3 convolutions (ReLU) and a 1x1 head give ``(N, 4+C, A)`` over a dynamic
batch axis, as an Ultralytics export does. The weights are seeded random numbers: the
timing needs the shape and the arithmetic of a detector, not its answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CLASS_NAMES", "build_detector"]

CLASS_NAMES = ["person", "car", "dog"]


def build_detector(path: Path, size: int = 320, widths: tuple[int, ...] = (16, 32, 64, 64), seed: int = 0) -> Path:
    """Write the detector to ``path`` and answer it.

    Raises:
        ModuleNotFoundError: the ``onnx`` package (a dev dependency) is missing.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev, channels = "images", 3
    for i, width in enumerate(widths):
        w = (rng.standard_normal((width, channels, 3, 3)) * np.sqrt(2.0 / (channels * 9))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}")]
        nodes += [
            helper.make_node(
                "Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        prev, channels = f"r{i}", width
    head = 4 + len(CLASS_NAMES)
    wh = (rng.standard_normal((head, channels, 1, 1)) * 0.1).astype(np.float32)
    inits += [
        numpy_helper.from_array(wh, "wh"),
        numpy_helper.from_array(np.zeros(head, np.float32), "bh"),
        numpy_helper.from_array(np.array([0, head, -1], np.int64), "shape"),
    ]
    nodes += [
        helper.make_node("Conv", [prev, "wh", "bh"], ["head"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["head", "shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["output0"]),
    ]
    anchors = (size // 2 ** len(widths)) ** 2
    graph = helper.make_graph(
        nodes,
        "bench_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", head, anchors])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
