"""The built-in pre-processor: OpenCV's bundled Haar-cascade frontal-face detector.

Nothing is downloaded: opencv-python-headless ships the cascade XML under
``cv2.data.haarcascades``. It runs on CPU. A batch is detected on a thread pool, one
image per thread (OpenCV releases the GIL); a single image instead uses OpenCV's own
threads inside the detection, which is the best one image alone can do.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.errors import InvalidInputError, NotFoundError
from common.totask.objects import AnnotationObject
from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import InferenceItem, Prediction

__all__ = ["FACE_CLASS_ID", "HaarFaceDetector", "decode_image"]

log = logging.getLogger(__name__)
FACE_CLASS_ID = 1
# OpenCV's thread count is process-wide: one predict at a time may change it.
_CV_THREADS_LOCK = threading.Lock()


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Decode image bytes to a grayscale array.

    Raises:
        InvalidInputError: the bytes are not an image OpenCV can read.
    """
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise InvalidInputError(f"Cannot decode image {source}: not a PNG/JPEG/BMP/TIFF/WebP image; check the file")
    return img


def score_of(weight: float) -> float:
    """Map the cascade's last-stage margin to 0..1.

    A logistic of the margin shifted by 2: on the bundled sample images real faces score
    above 0.99 and the false positives that minNeighbors=1 lets through score below 0.5.
    It is a calibration by eye, not a probability.
    """
    return 1.0 / (1.0 + math.exp(-(weight - 2.0)))


class HaarFaceDetector:
    """Frontal faces as ``bbox`` objects of class 1 (``face``) with a score."""

    name = "haar-face"
    needs_bytes = True

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        threads: int | None = None,
    ) -> None:
        self.cascade_path = Path(cv2.data.haarcascades) / cascade  # type: ignore[attr-defined]
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.threads = threads or os.cpu_count() or 1
        self.version = f"opencv-{cv2.__version__}/{self.cascade_path.stem}"
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._warned_device = False

    def load(self) -> None:
        """Check the bundled cascade loads and start the thread pool.

        Raises:
            NotFoundError: the cascade XML is missing from the OpenCV install.
        """
        if not self.cascade_path.is_file():
            raise NotFoundError(
                f"Haar cascade {self.cascade_path} is missing; reinstall opencv-python-headless (4.x ships it)"
            )
        self._classifier()
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="haar")

    def health(self) -> bool:
        """True once loaded."""
        return self._pool is not None

    def _classifier(self) -> Any:
        # One classifier per thread: detectMultiScale keeps scratch state in the object.
        clf = getattr(self._local, "clf", None)
        if clf is None:
            clf = cv2.CascadeClassifier(str(self.cascade_path))
            if clf.empty():
                raise NotFoundError(f"Haar cascade {self.cascade_path} did not load; reinstall opencv-python-headless")
            self._local.clf = clf
        return clf

    def detect(self, gray: np.ndarray, min_size: float | None = None) -> list[AnnotationObject]:
        """Detect faces in one grayscale image."""
        side = max(1, int(min_size)) if min_size else 0  # skipping small scales is also faster
        boxes, _levels, weights = self._classifier().detectMultiScale3(
            cv2.equalizeHist(gray),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        out = []
        for i, ((x, y, w, h), weight) in enumerate(zip(boxes, np.ravel(weights), strict=False)):
            out.append(
                AnnotationObject(
                    id=f"face_{i + 1}",
                    class_id=FACE_CLASS_ID,
                    type="bbox",
                    coordinates={"x": int(x), "y": int(y), "width": int(w), "height": int(h)},
                    properties={"label": "face", "cascade_weight": round(float(weight), 4)},
                    score=round(score_of(float(weight)), 6),
                )
            )
        return out

    def _one(self, item: InferenceItem, min_size: float | None) -> Prediction:
        if item.data is None:
            raise InvalidInputError(f"no image bytes for task {item.task_uuid}; the strategy must download them")
        return list(self.detect(decode_image(item.data, item.url), min_size))

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        """Detect faces in each image of the batch.

        Raises:
            InvalidInputError: an image cannot be decoded.
        """
        if self._pool is None:
            self.load()
        assert self._pool is not None
        device = params.model_cfg.device
        if device not in ("auto", "cpu") and not self._warned_device:
            log.warning("haar-face runs on CPU only; model_config.device=%s is ignored", device)
            self._warned_device = True
        min_size = params.min_object_size
        if len(batch) <= 1 or self.threads <= 1:
            return [self._one(item, min_size) for item in batch]
        with _CV_THREADS_LOCK:
            before = cv2.getNumThreads()
            cv2.setNumThreads(1)  # parallel across images instead of inside each one
            try:
                return list(self._pool.map(lambda it: self._one(it, min_size), batch))
            finally:
                cv2.setNumThreads(before)
