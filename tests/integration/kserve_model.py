"""A KServe ModelServer serving one ONNX file with onnxruntime: ``python -m tests.integration.kserve_model``.

Arguments: ``MODEL_NAME ONNX_PATH`` then KServe's own (``--http_port N --enable_grpc false``).
The model declares its inputs and outputs from the ONNX graph (dynamic axes as -1), so
``/v2/models/{name}`` answers real metadata.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnxruntime as ort

NAME, PATH = sys.argv[1], sys.argv[2]
del sys.argv[1:3]  # KServe parses sys.argv on import

import kserve  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402

_TYPES = {"tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}


def _meta(args: Any) -> list[dict[str, Any]]:
    return [
        {"name": a.name, "datatype": _TYPES[a.type], "shape": [d if isinstance(d, int) else -1 for d in a.shape]}
        for a in args
    ]


class OnnxModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        self.ready = True
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        return _meta(self.session.get_inputs())

    def get_output_types(self) -> list[dict[str, Any]]:
        return _meta(self.session.get_outputs())

    async def predict(self, payload: InferRequest, headers: Any = None, response_headers: Any = None) -> InferResponse:
        feed = {i.name: i.as_numpy() for i in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, value in zip(names, self.session.run(names, feed), strict=True):
            arr = np.asarray(value)
            out = InferOutput(name=name, shape=list(arr.shape), datatype=_TYPES[f"tensor({_np(arr)})"])
            out.set_data_from_numpy(arr, binary_data=True)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=outputs,
            requested_outputs=payload.request_outputs,
        )


def _np(arr: np.ndarray) -> str:
    return {"float32": "float", "float16": "float16", "int64": "int64", "int32": "int32"}[str(arr.dtype)]


if __name__ == "__main__":
    kserve.ModelServer().start([OnnxModel(NAME, PATH)])
