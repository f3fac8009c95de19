"""The parameters of a tensor detector: an ONNX file run here, or a model behind the v2 inference protocol.

They ride in ``pre_processor_params`` next to the shared thresholds (which
``PreProcessorParams`` keeps): the model file, the input size, letterbox and
normalisation, the class names and how to read the model's output.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.errors import InvalidInputError
from common.totask.params import PreProcessorParams

__all__ = ["DetectorParams", "OutputFormat", "detector_params", "thresholds"]

OutputFormat = Literal["auto", "yolo", "boxes"]
"""``yolo``: one ``(N, 4+C, A)`` or ``(N, A, 4+C | 5+C)`` tensor; ``boxes``: boxes, scores, classes tensors."""

# What an ONNX detector defaults to when the user sets no threshold (Ultralytics' own defaults).
DEFAULT_CONFIDENCE = 0.25
DEFAULT_NMS = 0.45


class DetectorParams(BaseModel):
    """How to feed a detector and read what it answers."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    model_path: str | None = Field(None, description="the .onnx file (onnx pre-processor only)")
    input_size: tuple[int, int] | None = Field(None, description="width, height; default: the model's own")
    letterbox: bool = Field(True, description="keep the aspect ratio and pad; False stretches the image")
    pad_value: int = Field(114, ge=0, le=255)
    channel_order: Literal["rgb", "bgr"] = "rgb"
    scale: float = Field(1.0 / 255.0, gt=0.0, description="pixel values are multiplied by this first")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    class_names: list[str] | None = None
    output_format: OutputFormat = "auto"
    box_format: Literal["xyxy", "xywh", "cxcywh"] = Field("xyxy", description="boxes output only")
    normalized_boxes: bool = Field(False, description="boxes output in 0..1 of the input size")
    outputs: dict[str, str] = Field(
        default_factory=dict, description="output tensor names by role: boxes, scores, classes"
    )
    max_detections: int = Field(300, ge=1)
    input_name: str | None = Field(None, description="the model's image input; default: its first input")

    @field_validator("input_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        # 640 means 640x640, as YOLO exports name it.
        return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("input_size")
    @classmethod
    def _positive(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError(f"must be positive, got {value}; give 640 or [width, height]")
        return value

    @field_validator("std")
    @classmethod
    def _std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError(f"must be > 0 per channel, got {list(value)}")
        return value

    @field_validator("outputs")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - {"boxes", "scores", "classes"}
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; name only boxes, scores and classes")
        return value


def detector_params(params: PreProcessorParams, who: str) -> DetectorParams:
    """The detector's share of ``pre_processor_params`` (its extra keys).

    Raises:
        InvalidInputError: one line naming each bad key.
    """
    try:
        return DetectorParams.model_validate(params.model_extra or {})
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise InvalidInputError(f"{who}: invalid pre_processor_params: {bad}") from e


def thresholds(params: PreProcessorParams) -> tuple[float, float]:
    """The confidence and NMS thresholds, with the detector defaults where unset."""
    conf = params.confidence_threshold if params.confidence_threshold is not None else DEFAULT_CONFIDENCE
    iou = params.nms_threshold if params.nms_threshold is not None else DEFAULT_NMS
    return conf, iou
