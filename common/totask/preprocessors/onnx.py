"""The ``onnx`` pre-processor: the user's ONNX detector (YOLO and the like) run with onnxruntime.

``pre_processor_params`` name the model file and how to feed and read it (see
``DetectorParams``); ``model_config.batch_size`` images go through the model in one run
over its dynamic batch axis, and ``model_config.device`` picks CUDA when onnxruntime has
it (CPU otherwise). ``check`` opens and tries the model at the start of a run, before
any task is claimed; workers open it on their first batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common.errors import InvalidInputError
from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import InferenceItem, Prediction
from common.totask.preprocessors.detector_outputs import decode_outputs, to_objects
from common.totask.preprocessors.detector_params import DetectorParams, detector_params, thresholds
from common.totask.preprocessors.letterbox import place_all, to_tensor
from common.totask.preprocessors.onnx_model import OnnxModel, Prepared, runtime_version

__all__ = ["OnnxDetector"]


class OnnxDetector:
    """Boxes from an ONNX detector file, as ``bbox`` objects with class names and scores."""

    name = "onnx"
    needs_bytes = True

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.version = f"onnxruntime-{runtime_version()}"
        self.model_files: list[str] = []
        self._models: dict[tuple[str, str], OnnxModel] = {}
        self._prepared: dict[tuple[str, str, str], tuple[OnnxModel, Prepared]] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def load(self) -> None:
        """Start the image thread pool; the model opens with the run's parameters (``check`` or the first batch)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="onnx-img")

    def health(self) -> bool:
        """True once loaded."""
        return self._pool is not None

    def check(self, params: PreProcessorParams) -> None:
        """Open the run's model and try it once, so bad input fails before any task is claimed.

        Raises:
            InvalidInputError: no model_path, a file that is not ONNX, a wrong input shape,
                or class names that do not match the model.
        """
        self._ready(params)

    def _ready(self, params: PreProcessorParams) -> tuple[OnnxModel, Prepared, DetectorParams]:
        dp = detector_params(params, "onnx")
        if not dp.model_path:
            raise InvalidInputError("onnx: pre_processor_params.model_path is missing; give the .onnx file's path")
        device = params.model_cfg.device
        key = (str(Path(dp.model_path).expanduser().resolve()), device, dp.model_dump_json())
        with self._lock:
            if key not in self._prepared:
                model = self._models.get(key[:2])
                if model is None:
                    model = self._models[key[:2]] = OnnxModel(dp.model_path, device)
                self._prepared[key] = (model, model.prepare(dp))
                self.version = f"onnxruntime-{runtime_version()}/{Path(model.path).stem}-{model.digest[:12]}"
                if model.path not in self.model_files:
                    self.model_files.append(model.path)
            model, prep = self._prepared[key]
        return model, prep, dp

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        """Detect objects in each image, the whole batch in one model run.

        Raises:
            InvalidInputError: bad parameters or model (as ``check``), or an image that cannot be decoded.
        """
        self.load()
        assert self._pool is not None
        model, prep, dp = self._ready(params)

        placed = place_all(batch, prep.size, dp, self._pool)
        conf, iou = thresholds(params)
        step = prep.max_batch or len(placed) or 1
        out: list[Prediction] = []
        for start in range(0, len(placed), step):
            chunk = placed[start : start + step]
            planes = [pl for pl, _ in chunk]
            if prep.max_batch is not None and len(planes) < prep.max_batch:  # a fixed batch axis: pad it
                planes += [np.zeros_like(planes[0])] * (prep.max_batch - len(planes))
            values = model.run(prep.input_name, to_tensor(planes).astype(prep.dtype, copy=False))
            dets = decode_outputs(values, prep.spec, dp, conf, iou, prep.size)
            out += [list(to_objects(d, at, prep.class_names)) for d, (_, at) in zip(dets, chunk, strict=False)]
        return out
