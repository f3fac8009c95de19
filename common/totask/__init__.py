"""ToTask pre-annotation: parameters, the object model, formats, downloads and strategies.

Workers call :class:`FileStrategy` / :class:`InferenceStrategy` (or :func:`run_batch`) with
``TaskSpec``s and publish the ``TaskCompletionResult``s they return; the producer validates
parameters with :func:`validate_params` and checks the model with :func:`ensure_ready`.

The names below load on first use: importing the object model (``common.totask.objects``),
as the export and the Label Studio connector do, does not load OpenCV and the pre-processors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.totask.download import DownloadSettings, Fetcher
    from common.totask.objects import AnnotationObject, Provenance
    from common.totask.params import PreProcessorParams, StrategyParams, ToTaskParams, load_params, validate_params
    from common.totask.preprocessors import REGISTRY, ensure_ready
    from common.totask.strategies import FileStrategy, InferenceStrategy, run_batch

_HOME = {
    "DownloadSettings": "download",
    "Fetcher": "download",
    "AnnotationObject": "objects",
    "Provenance": "objects",
    "PreProcessorParams": "params",
    "StrategyParams": "params",
    "ToTaskParams": "params",
    "load_params": "params",
    "validate_params": "params",
    "REGISTRY": "preprocessors",
    "ensure_ready": "preprocessors",
    "FileStrategy": "strategies",
    "InferenceStrategy": "strategies",
    "run_batch": "strategies",
}

__all__ = [
    "REGISTRY",
    "AnnotationObject",
    "DownloadSettings",
    "Fetcher",
    "FileStrategy",
    "InferenceStrategy",
    "PreProcessorParams",
    "Provenance",
    "StrategyParams",
    "ToTaskParams",
    "ensure_ready",
    "load_params",
    "run_batch",
    "validate_params",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'common.totask' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"common.totask.{home}"), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value
