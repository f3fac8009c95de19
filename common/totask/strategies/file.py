"""The file strategy: each task's annotation file, downloaded, converted, checked, applied.

A batch's files download concurrently; a bad file fails its task only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.errors import AnnoflowError, InvalidInputError
from common.models import TaskCompletionResult, TaskSpec
from common.totask.download import Fetcher
from common.totask.formats import ConvertContext, Converter, Parsed, convert_data_from_file, load_converter
from common.totask.objects import Provenance, check_bounds
from common.totask.params import StrategyParams
from common.totask.postprocess import postprocess
from common.totask.strategies.base import choose_pathway, context_of, failure, now, params_of, stamp, success

__all__ = ["FileStrategy"]


class FileStrategy:
    """Annotate tasks from the JSON file under ``target_specification_name``.

    Subclass and override :meth:`convert_data_from_file` to read a format of your own,
    or name a ``module:function`` converter in the run's ``converter`` parameter.
    """

    method = "file"

    def __init__(self, fetcher: Fetcher | None = None) -> None:
        self.fetcher = fetcher or Fetcher()
        self._params: dict[str, StrategyParams] = {}
        self._converters: dict[str, Converter] = {}

    def convert_data_from_file(self, data: Any, context: ConvertContext, params: StrategyParams) -> Parsed:
        """The hook: turn one downloaded file into native objects.

        Raises:
            InvalidInputError: the file's format or an object is invalid.
        """
        converter = None
        if params.converter:
            if params.converter not in self._converters:
                self._converters[params.converter] = load_converter(params.converter)
            converter = self._converters[params.converter]
        return convert_data_from_file(data, context, converter)

    def run(self, specs: Sequence[TaskSpec]) -> list[TaskCompletionResult]:
        """Annotate a batch; one result per spec, in order, failures included."""
        started = now()
        results: list[TaskCompletionResult | None] = [None] * len(specs)
        todo: list[tuple[int, StrategyParams, str]] = []
        for i, spec in enumerate(specs):
            try:
                params = params_of(spec, self._params)
                todo.append((i, params, self._url(spec, params)))
            except AnnoflowError as e:
                results[i] = failure(spec, str(e), started)
        fetched = self.fetcher.fetch_json_many([url for _, _, url in todo])
        for (i, params, url), data in zip(todo, fetched, strict=True):
            spec = specs[i]
            if isinstance(data, AnnoflowError):
                results[i] = failure(spec, str(data), started)
                continue
            try:
                results[i] = self._apply(spec, params, url, data, started)
            except AnnoflowError as e:
                results[i] = failure(spec, str(e), started)
        return [r for r in results if r is not None]

    @staticmethod
    def _url(spec: TaskSpec, params: StrategyParams) -> str:
        name = params.target_specification_name or ""
        file = spec.files.get(name)
        if file is None:
            have = ", ".join(sorted(spec.files)) or "none"
            raise InvalidInputError(
                f"Target specification not found: data unit {spec.data_title!r} has no file {name!r} "
                f"(it has: {have}); upload the annotation file under that specification"
            )
        return file.url

    def _apply(self, spec: TaskSpec, params: StrategyParams, url: str, data: Any, started: Any) -> TaskCompletionResult:
        ctx = context_of(spec, url)
        parsed = self.convert_data_from_file(data, ctx, params)
        # The data unit's own size wins; the file's declared size is the fallback.
        check_bounds(parsed.objects, ctx.width or parsed.width, ctx.height or parsed.height)
        objects = postprocess(parsed.objects, params.pre_processor_params)
        prov = Provenance(run_id=spec.run_id, method="file", source=url)
        return success(spec, stamp(objects, prov), started, choose_pathway(spec, objects, params.route))
