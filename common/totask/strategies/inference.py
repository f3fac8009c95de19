"""The inference strategy: run a pre-processor on each task's primary image.

The batch's images download concurrently (for in-process plugins), then go to the
pre-processor in chunks of ``model_config.batch_size`` under ``inference_timeout``.
A chunk that fails is retried one item at a time, so a bad image fails its task only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from common.errors import AnnoflowError, InvalidInputError, TransientError
from common.models import TaskCompletionResult, TaskSpec
from common.totask.download import Fetcher
from common.totask.formats.native import parse_objects
from common.totask.objects import Provenance, check_bounds
from common.totask.params import StrategyParams
from common.totask.postprocess import postprocess
from common.totask.preprocessors import REGISTRY, InferenceItem, Prediction, PreProcessor, PreProcessorRegistry
from common.totask.strategies.base import choose_pathway, context_of, failure, now, params_of, stamp, success

__all__ = ["InferenceStrategy", "primary_url"]


def primary_url(spec: TaskSpec) -> str:
    """The URL of the task's primary image.

    Raises:
        InvalidInputError: the data unit has no primary file.
    """
    files = list(spec.files.values())
    chosen = next((f for f in files if f.is_primary), files[0] if len(files) == 1 else None)
    if chosen is None:
        raise InvalidInputError(
            f"data unit {spec.data_title!r} has no primary image ({len(files)} files, none marked primary); "
            "mark one file is_primary"
        )
    return chosen.url


def _call_with_timeout(pre: PreProcessor, batch: list[InferenceItem], params: StrategyParams) -> list[Prediction]:
    # A daemon thread per call: a hung model cannot be killed, but it must not hold the batch.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = pre.predict(batch, params.pre_processor_params)
        except BaseException as e:  # handed to the caller's thread below
            box["err"] = e

    thread = threading.Thread(target=target, name=f"predict-{pre.name}", daemon=True)
    thread.start()
    timeout = params.pre_processor_params.inference_timeout
    thread.join(timeout)
    if thread.is_alive():
        raise TransientError(
            f"Pre-processor inference timeout: {pre.name} took over {timeout:g} s for {len(batch)} image(s); "
            "lower model_config.batch_size or raise inference_timeout"
        )
    if "err" in box:
        raise box["err"]
    out: list[Prediction] = box["out"]
    if len(out) != len(batch):
        raise InvalidInputError(f"Pre-processor {pre.name} returned {len(out)} predictions for {len(batch)} images")
    return out


class InferenceStrategy:
    """Annotate tasks with a pre-processor's predictions, post-processed and stamped."""

    method = "inference"

    def __init__(self, fetcher: Fetcher | None = None, registry: PreProcessorRegistry | None = None) -> None:
        self.fetcher = fetcher or Fetcher()
        self.registry = registry or REGISTRY
        self._params: dict[str, StrategyParams] = {}

    def run(self, specs: Sequence[TaskSpec]) -> list[TaskCompletionResult]:
        """Annotate a batch; one result per spec, in order, failures included."""
        started = now()
        results: dict[int, TaskCompletionResult] = {}
        groups: dict[str, list[tuple[int, StrategyParams]]] = {}
        for i, spec in enumerate(specs):
            try:
                params = params_of(spec, self._params)
            except AnnoflowError as e:
                results[i] = failure(spec, str(e), started)
                continue
            # Specs of one message normally share a run; group anyway so each group has one model and params.
            key = f"{params.pre_processor}\n{params.pre_processor_params.model_dump_json()}"
            groups.setdefault(key, []).append((i, params))
        for members in groups.values():
            results.update(self._group(specs, members, started))
        return [results[i] for i in range(len(specs))]

    def _group(
        self, specs: Sequence[TaskSpec], members: list[tuple[int, StrategyParams]], started: datetime
    ) -> dict[int, TaskCompletionResult]:
        params = members[0][1]
        out: dict[int, TaskCompletionResult] = {}
        try:
            pre = self.registry.get(params.pre_processor or "")
        except AnnoflowError as e:
            return {i: failure(specs[i], str(e), started) for i, _ in members}
        except Exception as e:  # a plugin's load() may fail any way it likes
            msg = f"Pre-processor not active: loading {params.pre_processor!r} failed ({type(e).__name__}: {e})"
            return {i: failure(specs[i], msg, started) for i, _ in members}
        items: list[tuple[int, InferenceItem]] = []
        for i, _ in members:
            spec = specs[i]
            try:
                ctx = context_of(spec, "")
                items.append((i, InferenceItem(str(spec.uuid), primary_url(spec), None, ctx.width, ctx.height)))
            except AnnoflowError as e:
                out[i] = failure(spec, str(e), started)
        if pre.needs_bytes:
            fetched = self.fetcher.fetch_many([it.url for _, it in items], what="image")
            ready = []
            for (i, it), data in zip(items, fetched, strict=True):
                if isinstance(data, AnnoflowError):
                    out[i] = failure(specs[i], str(data), started)
                else:
                    ready.append((i, InferenceItem(it.task_uuid, it.url, data, it.width, it.height)))
            items = ready
        size = params.pre_processor_params.model_cfg.batch_size
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            for (i, item), pred in zip(chunk, self._predict(pre, [it for _, it in chunk], params), strict=True):
                out[i] = self._finish(specs[i], params, pre, item, pred, started)
        return out

    def _predict(
        self, pre: PreProcessor, batch: list[InferenceItem], params: StrategyParams
    ) -> list[Prediction | AnnoflowError]:
        try:
            return list(_call_with_timeout(pre, batch, params))
        except TransientError as e:
            if len(batch) == 1 or "timeout" in str(e):
                return [e] * len(batch)  # retrying a timed-out model item by item would take n timeouts
        except AnnoflowError as e:
            if len(batch) == 1:
                return [e]
        except Exception as e:  # a plugin bug fails the tasks, never the worker
            if len(batch) == 1:
                return [InvalidInputError(f"Pre-processor {pre.name} failed: {type(e).__name__}: {e}")]
        # One item spoiled the chunk: find it by predicting one at a time.
        return [self._predict(pre, [item], params)[0] for item in batch]

    @staticmethod
    def _finish(
        spec: TaskSpec,
        params: StrategyParams,
        pre: PreProcessor,
        item: InferenceItem,
        pred: Prediction | AnnoflowError,
        started: datetime,
    ) -> TaskCompletionResult:
        if isinstance(pred, AnnoflowError):
            return failure(spec, str(pred), started)
        try:
            ctx = context_of(spec, f"{pre.name} prediction")
            objects = parse_objects(list(pred), ctx)
            check_bounds(objects, item.width, item.height)
            objects = postprocess(objects, params.pre_processor_params)
            prov = Provenance(
                run_id=spec.run_id,
                method="inference",
                pre_processor=pre.name,
                pre_processor_version=pre.version,
                source=item.url,
            )
            # Prefixing with the run keeps two runs' predictions apart on one label row.
            stamped = stamp(objects, prov, f"{(spec.run_id or 'pred')[:8]}-")
            return success(spec, stamped, started, choose_pathway(spec, objects, params.route))
        except AnnoflowError as e:
            return failure(spec, str(e), started)
