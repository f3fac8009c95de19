"""Which of a detector's outputs means what, checked once; then outputs into annotation objects.

``resolve_outputs`` looks at the output names and shapes a model declares (an ONNX
session or a v2 server's metadata) and the user's parameters, and settles the format
(YOLO tensor or boxes/scores/classes) and the class count, or says in one line why the
model and the parameters disagree. ``decode_outputs`` then runs per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import InvalidInputError
from common.totask.objects import AnnotationObject
from common.totask.preprocessors.detector_params import DetectorParams
from common.totask.preprocessors.letterbox import Placement, unplace
from common.totask.preprocessors.onnx_decoders import Detections, YoloLayout, decode_boxes, decode_yolo, yolo_layout

__all__ = ["OutputSpec", "decode_outputs", "resolve_outputs", "to_objects"]

Shape = tuple[int | str | None, ...]
# Output names that say their role, in TensorRT, TF and torchvision exports.
_ROLE_WORDS = {
    "boxes": ("box", "bbox"),
    "scores": ("score", "conf"),
    "classes": ("class", "label", "cls"),
    "num": ("num",),
}


@dataclass(frozen=True)
class OutputSpec:
    """How to read a model's outputs: a YOLO tensor (``layout``) or named boxes/scores/classes."""

    format: str
    names: dict[str, str]
    n_classes: int | None
    layout: YoloLayout | None = None


def _by_role(outputs: Mapping[str, Shape], dp: DetectorParams) -> dict[str, str]:
    names = dict(dp.outputs)
    for role, words in _ROLE_WORDS.items():
        if role in names:
            continue
        match = [n for n in outputs if n not in names.values() and any(w in n.lower() for w in words)]
        if match:
            names[role] = match[0]
    return names


def resolve_outputs(outputs: Mapping[str, Shape], dp: DetectorParams, who: str) -> OutputSpec:
    """Settle how to read ``outputs`` (name to declared shape) under the user's parameters.

    Raises:
        InvalidInputError: the format cannot be told, an output named in ``outputs`` is
            missing, or ``class_names`` does not match the model's class count.
    """
    n_classes = len(dp.class_names) if dp.class_names is not None else None
    missing = [n for n in dp.outputs.values() if n not in outputs]
    if missing:
        raise InvalidInputError(f"{who}: outputs {missing} not in the model (it has {list(outputs)}); fix outputs")
    fmt = dp.output_format
    if fmt == "auto":
        fmt = "yolo" if len(outputs) == 1 else "boxes"
    if fmt == "yolo":
        name = dp.outputs.get("boxes") or next(iter(outputs))
        try:
            layout, n = yolo_layout(outputs[name], n_classes)
        except InvalidInputError as e:
            raise InvalidInputError(f"{who}: {e}") from e
        return OutputSpec("yolo", {"yolo": name}, n, layout)
    names = _by_role(outputs, dp)
    if "boxes" not in names or "scores" not in names:
        raise InvalidInputError(
            f"{who}: cannot find the boxes and scores among outputs {list(outputs)}; "
            "name them in pre_processor_params.outputs {boxes, scores, classes}"
        )
    score_shape = outputs[names["scores"]]
    if "classes" not in names and len(score_shape) == 3 and isinstance(score_shape[2], int):
        if n_classes is not None and score_shape[2] != n_classes:
            raise InvalidInputError(
                f"{who}: class_names lists {n_classes} classes but scores {list(score_shape)} hold "
                f"{score_shape[2]}; give the model's class names, in its order"
            )
        n_classes = score_shape[2]
    return OutputSpec("boxes", names, n_classes)


def decode_outputs(
    values: Mapping[str, np.ndarray],
    spec: OutputSpec,
    dp: DetectorParams,
    conf: float,
    iou: float,
    size: tuple[int, int],
) -> list[Detections]:
    """Decode one batch's outputs into detections per image (boxes in input pixels)."""
    if spec.format == "yolo":
        assert spec.layout is not None
        return decode_yolo(values[spec.names["yolo"]], spec.layout, conf, iou, dp.max_detections)
    scale = (float(size[0]), float(size[1])) if dp.normalized_boxes else (1.0, 1.0)
    return decode_boxes(
        values[spec.names["boxes"]],
        values[spec.names["scores"]],
        values.get(spec.names.get("classes", "")),
        values.get(spec.names.get("num", "")),
        conf,
        dp.box_format,
        scale,
        dp.max_detections,
    )


def to_objects(dets: Detections, at: Placement, class_names: Sequence[str] | None) -> list[AnnotationObject]:
    """Detections in input pixels as ``bbox`` objects on the original image, best first."""
    boxes = unplace(dets.boxes, at)
    out = []
    for i, ((x1, y1, x2, y2), score, cls) in enumerate(zip(boxes, dets.scores, dets.classes, strict=True)):
        c = int(cls)
        label = class_names[c] if class_names is not None and 0 <= c < len(class_names) else f"class_{c}"
        out.append(
            AnnotationObject(
                id=f"det_{i + 1}",
                class_id=c,
                type="bbox",
                coordinates={
                    "x": round(float(x1), 2),
                    "y": round(float(y1), 2),
                    "width": round(float(x2 - x1), 2),
                    "height": round(float(y2 - y1), 2),
                },
                properties={"label": label},
                score=round(min(1.0, max(0.0, float(score))), 6),
            )
        )
    return out
