"""The ToTask strategies: entry points that take ``TaskSpec``s and answer ``TaskCompletionResult``s."""

from __future__ import annotations

from collections.abc import Sequence

from common.models import TaskCompletionResult, TaskSpec
from common.totask.strategies.file import FileStrategy
from common.totask.strategies.inference import InferenceStrategy

__all__ = ["FileStrategy", "InferenceStrategy", "run_batch"]


def run_batch(
    specs: Sequence[TaskSpec], file: FileStrategy | None = None, inference: InferenceStrategy | None = None
) -> list[TaskCompletionResult]:
    """Run each spec through the strategy its ``params.method`` names; results keep the specs' order.

    Pass long-lived strategies (one per worker process) so connections and models are reused.
    """
    file = file or FileStrategy()
    inference = inference or InferenceStrategy(fetcher=file.fetcher)
    by_method: dict[str, list[int]] = {"file": [], "inference": []}
    for i, spec in enumerate(specs):
        method = spec.params.get("method") or ("inference" if spec.kind == "totask.inference" else "file")
        by_method["inference" if method == "inference" else "file"].append(i)
    out: dict[int, TaskCompletionResult] = {}
    for method, idx in by_method.items():
        if idx:
            runner = inference if method == "inference" else file
            out.update(zip(idx, runner.run([specs[i] for i in idx]), strict=True))
    return [out[i] for i in range(len(specs))]
