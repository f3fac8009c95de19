"""ToTask pre-annotation: parameters, the object model, formats, downloads and strategies.

Workers call :class:`FileStrategy` / :class:`InferenceStrategy` (or :func:`run_batch`) with
``TaskSpec``s and publish the ``TaskCompletionResult``s they return; the producer validates
parameters with :func:`validate_params` and checks the model with :func:`ensure_ready`.
"""

from common.totask.download import DownloadSettings, Fetcher
from common.totask.objects import AnnotationObject, Provenance
from common.totask.params import PreProcessorParams, StrategyParams, ToTaskParams, load_params, validate_params
from common.totask.preprocessors import REGISTRY, ensure_ready
from common.totask.strategies import FileStrategy, InferenceStrategy, run_batch

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
