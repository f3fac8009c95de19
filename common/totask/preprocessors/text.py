"""The built-in ``text`` pre-processor: PP-OCRv4 text detection and recognition, on onnxruntime.

Nothing is downloaded: ``rapidocr-onnxruntime`` ships the PP-OCRv4 detection and
recognition ONNX models (and the angle classifier) inside its wheel. Each text region
becomes a ``polygon`` (or, with ``text_shape: bbox``, a ``bbox``) of class 1 (``text``)
whose ``text`` property holds what was read; the score is the recognition confidence.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import InvalidInputError, NotFoundError
from common.totask.objects import AnnotationObject
from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import InferenceItem, Prediction

__all__ = ["TEXT_CLASS_ID", "TextDetector", "TextParams"]

TEXT_CLASS_ID = 1
DEFAULT_TEXT_SCORE = 0.5
_INSTALL = "install it with 'pip install annoflow[ocr]' (rapidocr-onnxruntime ships the PP-OCRv4 models)"


class TextParams(BaseModel):
    """The ``text`` pre-processor's own keys in ``pre_processor_params``."""

    model_config = ConfigDict(extra="ignore")

    text_shape: Literal["polygon", "bbox"] = "polygon"
    box_threshold: float = Field(0.5, ge=0.0, le=1.0, description="detector's region score to keep a region")
    use_angle_classifier: bool = Field(True, description="turn upside-down lines before reading them")


def _text_params(params: PreProcessorParams) -> TextParams:
    try:
        return TextParams.model_validate(params.model_extra or {})
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise InvalidInputError(f"text: invalid pre_processor_params: {bad}") from e


class TextDetector:
    """Text regions and what they say, from RapidOCR's bundled PP-OCRv4 models."""

    name = "text"
    needs_bytes = True

    def __init__(self) -> None:
        self.version = "rapidocr/PP-OCRv4"
        self.model_files: list[str] = []
        self._engines: dict[bool, Any] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """Open the bundled models on CPU (CUDA engines open on first use).

        Raises:
            NotFoundError: rapidocr-onnxruntime is not installed.
        """
        self._engine(False)

    def health(self) -> bool:
        """True once loaded."""
        return bool(self._engines)

    def check(self, params: PreProcessorParams) -> None:
        """Check the text keys of the run's parameters.

        Raises:
            InvalidInputError: a bad ``text_shape``, ``box_threshold`` or ``use_angle_classifier``.
        """
        _text_params(params)

    def _engine(self, cuda: bool) -> Any:
        with self._lock:
            if cuda not in self._engines:
                try:
                    from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped, import-not-found, unused-ignore]
                except ImportError as e:
                    raise NotFoundError(f"text: rapidocr-onnxruntime is not installed; {_INSTALL}") from e
                self._engines[cuda] = RapidOCR(det_use_cuda=cuda, cls_use_cuda=cuda, rec_use_cuda=cuda)
                root = Path(importlib.import_module("rapidocr_onnxruntime").__file__ or ".").parent
                self.model_files = sorted(str(p) for p in (root / "models").glob("*.onnx"))
                self.version = f"rapidocr-{importlib.metadata.version('rapidocr-onnxruntime')}/PP-OCRv4"
            return self._engines[cuda]

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        """Read the text in each image.

        Raises:
            InvalidInputError: an image that cannot be decoded, or bad text parameters.
        """
        tp = _text_params(params)
        engine = self._engine(params.model_cfg.device.startswith("cuda"))
        score = params.confidence_threshold if params.confidence_threshold is not None else DEFAULT_TEXT_SCORE
        out: list[Prediction] = []
        for item in batch:
            if item.data is None:
                raise InvalidInputError(f"no image bytes for task {item.task_uuid}; the strategy must download them")
            try:
                with self._lock:  # the engine keeps the thresholds of its last call
                    found, _elapsed = engine(
                        item.data, use_cls=tp.use_angle_classifier, box_thresh=tp.box_threshold, text_score=score
                    )
            except Exception as e:  # RapidOCR raises its own LoadImageError, or cv2/numpy errors
                raise InvalidInputError(f"Cannot read image {item.url} for text: {type(e).__name__}: {e}") from e
            out.append([_object(i, region, tp.text_shape) for i, region in enumerate(found or [])])
        return out


def _object(i: int, region: Any, shape: str) -> AnnotationObject:
    points, text, conf = region
    pts = [[round(float(x), 2), round(float(y), 2)] for x, y in points]
    if shape == "bbox":
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        coords: dict[str, Any] = {"x": min(xs), "y": min(ys), "width": max(xs) - min(xs), "height": max(ys) - min(ys)}
    else:
        coords = {"points": pts}
    return AnnotationObject(
        id=f"text_{i + 1}",
        class_id=TEXT_CLASS_ID,
        type="bbox" if shape == "bbox" else "polygon",
        coordinates=coords,
        properties={"label": "text", "text": str(text)},
        score=round(min(1.0, max(0.0, float(conf))), 6),
    )
