"""Remote model servers: ``GET /health``, ``POST /setup`` and ``POST /predict`` over HTTP.

The request is the Label Studio ML backend's shape, so such a backend is one of these
servers: ``{"tasks": [{"id", "data": {"image": URL}}], "params": {...}}``. The answer is
``{"results": [...], "model_version"}``, one entry per task in order, each a Label Studio
prediction (``{"result": [...], "score", "model_version"}``) or native data
(``{"objects": [...]}``).

A Label Studio ML backend (``label-studio-ml`` 1.0.x) refuses ``/predict`` until
``/setup`` has loaded its model, as Label Studio does when it connects one; so the
first ready health check (and a predict answered "run setup()", after a restart)
posts ``/setup`` first. A server without ``/setup`` (404, 405) needs none. The model
version recorded in provenance is the prediction's own, else the answer's, else the
one ``/setup`` or ``/health`` gave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import httpx

from common.errors import InvalidInputError, TransientError
from common.totask.formats import ConvertContext, convert_data_from_file
from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import InferenceItem, Prediction

__all__ = ["READY_STATES", "RemotePreProcessor"]

READY_STATES = {"up", "ok", "ready", "running", "healthy"}
SETUP_PROJECT = "annoflow"  # the project key a Label Studio backend keeps its model under


class RemotePreProcessor:
    """A model server at ``base_url``; the server fetches each image by URL itself."""

    needs_bytes = False

    def __init__(self, name: str, base_url: str, version: str = "remote", health_timeout: float = 5.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.health_timeout = health_timeout
        self._client: httpx.Client | None = None
        self._set_up = False

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url)
        return self._client

    def load(self) -> None:
        """Nothing to load here: the server holds the model."""

    def close(self) -> None:
        """Close the pooled connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def health(self) -> bool:
        """True when ``/health`` answers 200 with a ready status (or no status at all)."""
        try:
            resp = self._http().get("/health", timeout=self.health_timeout)
        except httpx.HTTPError:
            return False
        if resp.status_code != 200:
            return False
        try:
            body = resp.json()
        except ValueError:
            return True  # a plain "OK" page is a healthy server too
        status = body.get("status") if isinstance(body, dict) else None
        self._learn_version(body)
        ready = status is None or str(status).lower() in READY_STATES
        if ready and not self._set_up:
            try:
                self._setup(self.health_timeout)
            except (httpx.HTTPError, TransientError):
                return False  # up, but its model is not loaded yet: not ready
        return ready

    def _learn_version(self, body: Any) -> None:
        if isinstance(body, dict) and isinstance(body.get("model_version"), str) and body["model_version"]:
            self.version = body["model_version"]

    def _setup(self, timeout: float) -> None:
        """Post ``/setup`` so a Label Studio backend loads its model; a server without it needs none.

        Raises:
            httpx.HTTPError: the server could not be reached.
            TransientError: ``/setup`` failed with a 5xx.
        """
        # Connection: close, as a server without /setup may answer 404 leaving the body unread on the socket.
        body = {"project": SETUP_PROJECT, "schema": ""}
        resp = self._http().post("/setup", json=body, timeout=timeout, headers={"Connection": "close"})
        if resp.status_code >= 500:
            raise TransientError(
                f"Pre-processor {self.name} at {self.base_url} failed to set up its model: HTTP {resp.status_code}: "
                f"{resp.text[:200]}; check its logs"
            )
        if resp.status_code < 400:
            with contextlib.suppress(ValueError):  # a non-JSON answer: set up, with nothing to say
                self._learn_version(resp.json())
        self._set_up = True

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        """Send the batch's image URLs to ``/predict`` and convert the answers.

        Raises:
            TransientError: "Pre-processor inference timeout", a connection failure or a 5xx.
            InvalidInputError: a 4xx, or an answer that is not one result per task.
        """
        body = {
            "tasks": [{"id": it.task_uuid, "data": {"image": it.url}} for it in batch],
            "params": params.wire(),
        }
        try:
            if not self._set_up:
                self._setup(params.inference_timeout)
            resp = self._http().post("/predict", json=body, timeout=params.inference_timeout)
            if resp.status_code >= 500 and "setup()" in resp.text:
                # The backend restarted and lost its model: set it up again, once.
                self._setup(params.inference_timeout)
                resp = self._http().post("/predict", json=body, timeout=params.inference_timeout)
        except httpx.TimeoutException as e:
            raise TransientError(
                f"Pre-processor inference timeout: {self.name} at {self.base_url} took over "
                f"{params.inference_timeout:g} s for {len(batch)} image(s); lower model_config.batch_size "
                "or raise inference_timeout"
            ) from e
        except httpx.HTTPError as e:
            raise TransientError(f"Pre-processor {self.name} at {self.base_url} unreachable: {e}; check it runs") from e
        if resp.status_code >= 500:
            raise TransientError(f"Pre-processor {self.name} failed: HTTP {resp.status_code}; check its logs")
        if resp.status_code >= 400:
            raise InvalidInputError(
                f"Pre-processor {self.name} refused the request: HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            answer = resp.json()
            results = answer.get("results")
        except (ValueError, AttributeError) as e:
            raise InvalidInputError(
                f"Pre-processor {self.name} answered non-JSON or no 'results'; fix the server"
            ) from e
        if not isinstance(results, list) or len(results) != len(batch):
            got = len(results) if isinstance(results, list) else "no"
            raise InvalidInputError(
                f"Pre-processor {self.name} answered {got} results for {len(batch)} tasks; it must answer one per task"
            )
        own = [r["model_version"] for r in results if isinstance(r, dict) and r.get("model_version")]
        self._learn_version({"model_version": own[0] if own else answer.get("model_version")})
        return [self._convert(r, it) for r, it in zip(results, batch, strict=True)]

    def _convert(self, result: Any, item: InferenceItem) -> Prediction:
        if isinstance(result, dict) and not result.get("result") and not result.get("objects"):
            return []  # nothing found in this image
        ctx = ConvertContext(
            width=item.width, height=item.height, source=f"{self.name} prediction for {item.task_uuid}"
        )
        return list(convert_data_from_file(result, ctx).objects)
