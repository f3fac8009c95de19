"""Parameters and items for the tensor pre-processor tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.totask.params import PreProcessorParams
from common.totask.preprocessors import InferenceItem

CLASS_NAMES = ["red", "green", "blue"]


def params_for(model: Path | str, **over: Any) -> PreProcessorParams:
    """Parameters for the tiny detectors: their class names and a threshold above the padding's grey (0.45)."""
    base: dict[str, Any] = {
        "model_path": str(model),
        "class_names": CLASS_NAMES,
        "confidence_threshold": 0.6,
        "model_config": {"batch_size": 8, "device": "cpu"},
    }
    return PreProcessorParams.model_validate({**base, **over})


def items(*images: bytes) -> list[InferenceItem]:
    """One inference item per image."""
    return [InferenceItem(f"task-{i}", f"mem://image-{i}.png", data) for i, data in enumerate(images)]


def boxes_of(prediction: list[Any]) -> list[tuple[str, float, float, float, float]]:
    """(label, x, y, width, height) of each predicted object."""
    return [
        (o.properties["label"], o.coordinates["x"], o.coordinates["y"], o.coordinates["width"], o.coordinates["height"])
        for o in prediction
    ]
