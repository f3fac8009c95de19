"""A client for the open inference protocol (KServe v2, Triton) over HTTP/REST.

``/v2/health/ready``, ``/v2/models/{m}/ready``, model metadata ``/v2/models/{m}`` and
``/v2/models/{m}/infer``. Tensors travel in the binary tensor extension (raw
little-endian bytes after the JSON header, its length in ``Inference-Header-Content-Length``),
which KServe and Triton both speak; a JSON-only answer is read too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np

from common.errors import InvalidInputError, NotFoundError, TransientError

__all__ = ["DATATYPES", "HEADER_LENGTH", "V2Client"]

HEADER_LENGTH = "Inference-Header-Content-Length"
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
_NAMES = {np.dtype(v): k for k, v in DATATYPES.items()}


class V2Client:
    """One model on one inference server."""

    def __init__(self, base_url: str, model: str, version: str | None = None, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url)
        return self._client

    def close(self) -> None:
        """Close the pooled connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def ready(self) -> bool:
        """True when the server and the model both answer ready."""
        try:
            server = self._http().get("/v2/health/ready", timeout=self.timeout)
            model = self._http().get(f"{self.path}/ready", timeout=self.timeout)
        except httpx.HTTPError:
            return False
        return server.status_code == 200 and model.status_code == 200

    def metadata(self) -> dict[str, Any]:
        """The model's metadata: ``name``, ``platform``, ``inputs`` and ``outputs`` (name, datatype, shape).

        Raises:
            NotFoundError: the server does not serve the model. TransientError: it cannot be reached.
        """
        try:
            resp = self._http().get(self.path, timeout=self.timeout)
        except httpx.HTTPError as e:
            raise TransientError(f"v2 server {self.base_url} unreachable: {e}; check it runs") from e
        if resp.status_code == 404:
            raise NotFoundError(f"v2 server {self.base_url} serves no model {self.model!r}; check the model name")
        if resp.status_code != 200:
            raise TransientError(
                f"v2 server {self.base_url}: metadata of {self.model!r} answered HTTP {resp.status_code}"
            )
        body: dict[str, Any] = resp.json()
        return body

    def infer(self, inputs: Mapping[str, np.ndarray], outputs: list[str], timeout: float) -> dict[str, np.ndarray]:
        """Run the model on named input tensors; answer the named outputs.

        Raises:
            TransientError: a timeout ("Pre-processor inference timeout"), no connection or a 5xx.
            InvalidInputError: the server refused the request (4xx), with its reason.
        """
        header: dict[str, Any] = {
            "inputs": [],
            "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs],
        }
        blobs = []
        for name, tensor in inputs.items():
            data = np.ascontiguousarray(tensor).astype(tensor.dtype.newbyteorder("<"), copy=False).tobytes()
            header["inputs"].append(
                {
                    "name": name,
                    "shape": list(tensor.shape),
                    "datatype": _NAMES[tensor.dtype],
                    "parameters": {"binary_data_size": len(data)},
                }
            )
            blobs.append(data)
        head = json.dumps(header).encode()
        try:
            resp = self._http().post(
                f"{self.path}/infer",
                content=b"".join([head, *blobs]),
                headers={HEADER_LENGTH: str(len(head)), "Content-Type": "application/octet-stream"},
                timeout=timeout,
            )
        except httpx.TimeoutException as e:
            raise TransientError(
                f"Pre-processor inference timeout: {self.model} at {self.base_url} took over {timeout:g} s; "
                "lower model_config.batch_size or raise inference_timeout"
            ) from e
        except httpx.HTTPError as e:
            raise TransientError(f"v2 server {self.base_url} unreachable: {e}; check it runs") from e
        if resp.status_code >= 500:
            raise TransientError(f"v2 model {self.model} failed: HTTP {resp.status_code}: {_reason(resp)}")
        if resp.status_code >= 400:
            raise InvalidInputError(
                f"v2 model {self.model} refused the request: HTTP {resp.status_code}: {_reason(resp)}"
            )
        return _read(resp)


def _reason(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))[:300]
    except ValueError:
        return resp.text[:300]


def _read(resp: httpx.Response) -> dict[str, np.ndarray]:
    raw = resp.content
    length = resp.headers.get(HEADER_LENGTH)
    head_len = int(length) if length is not None else len(raw)
    try:
        body = json.loads(raw[:head_len])
    except ValueError as e:
        raise InvalidInputError("v2 server answered no JSON inference header; is it a v2 / Triton server?") from e
    out: dict[str, np.ndarray] = {}
    at = head_len
    for o in body.get("outputs", []):
        dtype = DATATYPES.get(o.get("datatype", ""))
        if dtype is None:
            raise InvalidInputError(f"v2 output {o.get('name')!r} has datatype {o.get('datatype')!r}; numbers only")
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arr = np.frombuffer(raw[at : at + size], dtype=np.dtype(dtype).newbyteorder("<"))
            at += size
        else:
            arr = np.asarray(o.get("data", []), dtype=dtype)
        out[o["name"]] = arr.reshape(o["shape"])
    return out
