"""A detector behind a standard model server (KServe v2 / Triton): images in as tensors, boxes out.

Named ``v2+http://HOST:PORT/v2/models/NAME`` (or registered with ``register_v2``). The
images are letterboxed here and sent as one ``(N, 3, H, W)`` tensor per batch; the
answer is read as a YOLO tensor or boxes/scores/classes, as for the ``onnx``
pre-processor, with the same ``pre_processor_params`` (input size, normalisation,
class names, thresholds). ``check`` reads the model's metadata and runs it once on a
blank image at the start of a run, so a wrong shape or class list fails before any task.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.errors import InvalidInputError
from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import InferenceItem, Prediction
from common.totask.preprocessors.detector_outputs import OutputSpec, decode_outputs, resolve_outputs, to_objects
from common.totask.preprocessors.detector_params import DetectorParams, detector_params, thresholds
from common.totask.preprocessors.letterbox import input_geometry, place_all, to_tensor
from common.totask.preprocessors.v2_protocol import DATATYPES, V2Client

__all__ = ["V2_SCHEME", "V2PreProcessor"]

V2_SCHEME = "v2+"


@dataclass(frozen=True)
class _Plan:
    input_name: str
    dtype: Any
    size: tuple[int, int]
    max_batch: int | None
    outputs: list[str]
    spec: OutputSpec


class V2PreProcessor:
    """A model on a v2 inference server; the images are fetched and letterboxed here."""

    needs_bytes = True

    def __init__(self, name: str, base_url: str, model: str, version: str | None = None) -> None:
        self.name = name
        self.client = V2Client(base_url, model, version)
        self.base_url = self.client.base_url
        self.version = f"v2/{model}" + (f"/{version}" if version else "")
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_url(cls, ref: str) -> V2PreProcessor:
        """From ``v2+http(s)://HOST[:PORT]/v2/models/NAME[/versions/V]``.

        Raises:
            InvalidInputError: a reference without ``/v2/models/NAME``.
        """
        url = ref.removeprefix(V2_SCHEME)
        base, sep, rest = url.partition("/v2/models/")
        model, _, version = rest.strip("/").partition("/versions/")
        if not sep or not model or not base.startswith(("http://", "https://")):
            raise InvalidInputError(
                f"Pre-processor {ref!r}: a v2 model is named v2+http://HOST:PORT/v2/models/NAME; fix the name"
            )
        return cls(ref, base, model.split("/")[0], version or None)

    def load(self) -> None:
        """Start the image thread pool; the server holds the model."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="v2-img")

    def health(self) -> bool:
        """True when the server and the model answer ready on ``/v2/health/ready`` and ``.../ready``."""
        return self.client.ready()

    def check(self, params: PreProcessorParams) -> None:
        """Check the parameters against the model's metadata and run it once on a blank image.

        Raises:
            InvalidInputError: a wrong input shape, or class names / outputs that do not match.
            NotFoundError: the server does not serve the model.
        """
        self._plan(params, detector_params(params, self.name))

    def _plan(self, params: PreProcessorParams, dp: DetectorParams) -> _Plan:
        key = dp.model_dump_json()
        with self._lock:
            if key in self._plans:
                return self._plans[key]
        meta = self.client.metadata()
        inputs = meta.get("inputs") or []
        inp = next((i for i in inputs if i.get("name") == dp.input_name), None) if dp.input_name else None
        if inp is None and dp.input_name:
            names = [i.get("name") for i in inputs]
            raise InvalidInputError(f"{self.name}: input_name {dp.input_name!r} is not an input of the model ({names})")
        inp = inp or (inputs[0] if inputs else {"name": "images", "shape": [-1, 3, -1, -1], "datatype": "FP32"})
        dtype = DATATYPES.get(str(inp.get("datatype")))
        if dtype not in (np.float32, np.float16):
            raise InvalidInputError(f"{self.name}: input {inp['name']!r} is {inp.get('datatype')}; FP32 or FP16 needed")
        size, max_batch = input_geometry(inp["name"], inp.get("shape") or [], dp, self.name)
        outputs = [o["name"] for o in meta.get("outputs") or []]
        blank = np.zeros((max_batch or 1, 3, size[1], size[0]), dtype)
        try:
            got = self.client.infer({inp["name"]: blank}, outputs, params.inference_timeout)
        except InvalidInputError as e:
            raise InvalidInputError(f"{self.name}: the model refuses a {size[0]}x{size[1]} input ({e})") from e
        shapes = {k: tuple(int(d) for d in v.shape) for k, v in got.items()}
        spec = resolve_outputs(shapes, dp, self.name)
        plan = _Plan(inp["name"], dtype, size, max_batch, list(got), spec)
        with self._lock:
            self._plans[key] = plan
        return plan

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        """Letterbox the batch here, infer it in one request, decode the boxes.

        Raises:
            InvalidInputError: bad parameters, an undecodable image or a refused request.
            TransientError: the server timed out, failed or cannot be reached.
        """
        self.load()
        assert self._pool is not None
        dp = detector_params(params, self.name)
        plan = self._plan(params, dp)
        placed = place_all(batch, plan.size, dp, self._pool)
        conf, iou = thresholds(params)
        step = plan.max_batch or len(placed) or 1
        out: list[Prediction] = []
        for start in range(0, len(placed), step):
            chunk = placed[start : start + step]
            planes = [pl for pl, _ in chunk]
            if plan.max_batch is not None and len(planes) < plan.max_batch:
                planes += [np.zeros_like(planes[0])] * (plan.max_batch - len(planes))
            tensor = to_tensor(planes).astype(plan.dtype, copy=False)
            values = self.client.infer({plan.input_name: tensor}, plan.outputs, params.inference_timeout)
            dets = decode_outputs(values, plan.spec, dp, conf, iou, plan.size)
            out += [list(to_objects(d, at, dp.class_names)) for d, (_, at) in zip(dets, chunk, strict=False)]
        return out
