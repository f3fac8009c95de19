"""What a pre-processor is: a model that turns a batch of images into annotation objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from common.totask.objects import AnnotationObject
from common.totask.params import PreProcessorParams

__all__ = ["ChecksParams", "InferenceItem", "PreProcessor", "Prediction"]

Prediction = list[AnnotationObject | dict[str, Any]]
"""One image's objects: native objects or native object dicts."""


@dataclass(frozen=True)
class InferenceItem:
    """One task's image as a pre-processor sees it.

    ``data`` holds the downloaded bytes for pre-processors with ``needs_bytes``; a remote
    server gets only the ``url`` and fetches the image itself.
    """

    task_uuid: str
    url: str
    data: bytes | None = None
    width: float | None = None
    height: float | None = None


@runtime_checkable
class PreProcessor(Protocol):
    """A model registered by name: an in-process plugin or a remote model server.

    ``load`` runs once per worker process, lazily (so after the fork), and may be slow;
    ``predict`` gets batches of ``model_config.batch_size`` items and answers one
    prediction per item, in order.
    """

    name: str
    version: str
    needs_bytes: bool

    def load(self) -> None:
        """Load the model (weights, sessions); called once per process before predict."""
        ...

    def health(self) -> bool:
        """True when predict can be called now."""
        ...

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        """Predict objects for each item of the batch, in order."""
        ...


@runtime_checkable
class ChecksParams(Protocol):
    """A pre-processor that can check a run's parameters against its model before the run claims tasks.

    Optional: ``ensure_ready`` calls ``check`` once the pre-processor is ready, when it has one.
    """

    def check(self, params: PreProcessorParams) -> None:
        """Raise ``InvalidInputError`` (one line: what is wrong, how to fix it) for parameters the model cannot take."""
        ...
