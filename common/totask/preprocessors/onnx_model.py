"""One ONNX model file opened in onnxruntime: provider choice, input checks, batched runs.

Opening checks what can be checked before any task: the file is an ONNX model, its
image input is ``(batch, 3, H, W)`` and agrees with ``input_size``, it runs on an input
of that size, and its outputs agree with the output format and ``class_names``. Each
failure is one ``InvalidInputError`` line that says how to fix it.
"""

from __future__ import annotations

import ast
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import InvalidInputError
from common.totask.preprocessors.detector_outputs import OutputSpec, resolve_outputs
from common.totask.preprocessors.detector_params import DetectorParams
from common.totask.preprocessors.letterbox import input_geometry

__all__ = ["OnnxModel", "Prepared", "providers_for", "runtime_version"]

log = logging.getLogger(__name__)
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def ort() -> Any:
    """onnxruntime, imported on first use: the producer and the applier import this module's
    registry but never run a model (onnxruntime costs about 20 MB and 25 ms at import)."""
    import onnxruntime  # type: ignore[import-untyped]

    return onnxruntime


def runtime_version() -> str:
    """onnxruntime's version, from its package metadata (no import)."""
    from importlib.metadata import version

    return version("onnxruntime")


def providers_for(device: str) -> list[Any]:
    """onnxruntime providers for a ``model_config.device``: CUDA when asked for (or auto) and present, else CPU."""
    if device == "auto" or device.startswith("cuda"):
        if CUDA in ort().get_available_providers():
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            return [(CUDA, {"device_id": index}), CPU]
        if device != "auto":
            log.warning("model_config.device=%s but onnxruntime has no CUDA provider here; running on CPU", device)
    elif device != "cpu":
        log.warning("model_config.device=%s is not supported by the onnx pre-processor; running on CPU", device)
    return [CPU]


@dataclass(frozen=True)
class Prepared:
    """A model ready for one parameter set: its input size, batch limit, class names and output reading."""

    input_name: str
    size: tuple[int, int]
    max_batch: int | None
    class_names: list[str] | None
    spec: OutputSpec
    dtype: Any = np.float32


class OnnxModel:
    """An onnxruntime session over one model file on one device."""

    def __init__(self, path: str, device: str) -> None:
        """Open the model.

        Raises:
            InvalidInputError: the file is missing or is not an ONNX model.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise InvalidInputError(f"onnx: model_path {path!r} is not a file; give the path of the .onnx model")
        data = p.read_bytes()
        self.path = str(p.resolve())
        self.digest = hashlib.sha256(data).hexdigest()
        try:
            self.session = ort().InferenceSession(data, providers=providers_for(device))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf, not importable as types
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise InvalidInputError(
                f"onnx: {path!r} is not an ONNX model onnxruntime can load ({first}); "
                "export the detector to ONNX (e.g. 'yolo export format=onnx') and point model_path at it"
            ) from e
        self.providers = self.session.get_providers()
        # After a batch, onnxruntime's idle threads would spin on the cores that the image
        # threads need for the next batch: stop them. One image alone gains from the spin.
        self._batch_run = ort().RunOptions()
        self._batch_run.add_run_config_entry("session.force_spinning_stop", "1")
        meta = self.session.get_modelmeta().custom_metadata_map
        self.meta_names = _names_of(meta.get("names"))

    @property
    def on_gpu(self) -> bool:
        """True when the session runs on CUDA."""
        return CUDA in self.providers

    def prepare(self, dp: DetectorParams) -> Prepared:
        """Check the model against the parameters and run it once on an input of that size.

        Raises:
            InvalidInputError: a wrong input shape, an input size the model refuses, or
                class names / outputs that do not match the model.
        """
        inp = self._input(dp)
        if "float" not in inp.type:
            raise InvalidInputError(f"onnx: input {inp.name!r} is {inp.type}; a float image input is needed")
        (w, h), max_batch = input_geometry(inp.name, list(inp.shape), dp, "onnx")
        dtype = np.float16 if "float16" in inp.type else np.float32
        names = dp.class_names
        if names is not None and self.meta_names is not None and len(names) != len(self.meta_names):
            raise InvalidInputError(
                f"onnx: class_names lists {len(names)} classes but the model was exported with "
                f"{len(self.meta_names)} ({', '.join(self.meta_names[:5])}...); give the model's class names"
            )
        names = names if names is not None else self.meta_names
        try:
            outs = self.run(inp.name, np.zeros((max_batch or 1, 3, h, w), dtype))
        except Exception as e:  # a size the graph cannot take fails inside onnxruntime
            first = str(e).strip().splitlines()[0][:200]
            raise InvalidInputError(
                f"onnx: the model fails on a {w}x{h} input ({first}); set input_size to the size it was exported with"
            ) from e
        shapes = {k: tuple(int(d) for d in v.shape) for k, v in outs.items()}
        spec = resolve_outputs(shapes, dp.model_copy(update={"class_names": names}), "onnx")
        return Prepared(inp.name, (w, h), max_batch, names, spec, dtype)

    def _input(self, dp: DetectorParams) -> Any:
        inputs = self.session.get_inputs()
        if dp.input_name is None:
            return inputs[0]
        for i in inputs:
            if i.name == dp.input_name:
                return i
        raise InvalidInputError(
            f"onnx: input_name {dp.input_name!r} is not an input of the model (it has "
            f"{[i.name for i in inputs]}); fix input_name"
        )

    def run(self, input_name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; every output by name."""
        names = [o.name for o in self.session.get_outputs()]
        values = self.session.run(names, {input_name: tensor}, self._batch_run if len(tensor) > 1 else None)
        return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


def _names_of(raw: str | None) -> list[str] | None:
    # Ultralytics writes names as a Python dict literal, "{0: 'person', 1: 'bicycle'}".
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value)]
    if isinstance(value, list):
        return [str(v) for v in value]
    return None
