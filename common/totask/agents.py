"""The ToTask strategies as built-in agent-stage handlers.

An agent stage can pre-label its tasks and route them by outcome, e.g. the
active-learning flow: sure predictions to Complete, the rest to Review::

    runner = QueueRunner(project="cars")
    totask_stage(runner, "Pre-label", {
        "method": "inference",
        "pre_processor": "http://models:9090",
        "pre_processor_params": {"confidence_threshold": 0.5},
        "route": {"threshold": 0.9, "high": "confident", "low": "uncertain"},
    })

``annoflow run --agents module:runner`` (or ``annoflow worker``) then runs the whole
batch through the strategy at once (downloads concurrent, model batched). A task
whose every object scores at least ``route.threshold`` takes ``route.high``, the rest
``route.low``; without ``route`` a task stays in the stage. A failure fails its task
only, and the stage's retries apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from common.errors import InvalidInputError
from common.models import TaskCompletionResult, TaskSpec
from common.runner.base import RunnerBase
from common.runner.handlers import StageAgent
from common.settings import Settings
from common.totask.download import DownloadSettings, Fetcher
from common.totask.params import StrategyParams
from common.totask.preprocessors import PreProcessorRegistry
from common.totask.strategies import FileStrategy, InferenceStrategy

__all__ = ["ToTaskStageAgent", "totask_stage"]


def _not_called() -> NoReturn:
    raise InvalidInputError("a ToTask stage handler runs whole batches; call the agent with task-spec JSON")


class ToTaskStageAgent(StageAgent):
    """An agent-stage handler that runs a ToTask strategy on each batch of specs.

    The strategies (and their pooled downloader and model) are made on the first batch
    in each process, so a forked worker makes its own.
    """

    def __init__(
        self,
        runner: RunnerBase,
        stage_key: str,
        params: StrategyParams,
        *,
        download: DownloadSettings | None = None,
        registry: PreProcessorRegistry | None = None,
        overwrite: bool = False,
    ) -> None:
        super().__init__(
            runner, stage_key, _not_called, include_labels=True, overwrite=overwrite, will_set_priority=False
        )
        self.params = params
        self.wire = params.model_dump(mode="json", by_alias=True)
        self.download = download
        self.registry = registry
        self._strategies: tuple[FileStrategy, InferenceStrategy] | None = None

    def __repr__(self) -> str:
        return f"ToTaskStageAgent({self.stage_key!r}, method={self.params.method!r})"

    def _strategy(self) -> FileStrategy | InferenceStrategy:
        if self._strategies is None:
            # Read in the worker process on first use, never at import.
            download = self.download or DownloadSettings(allowed_roots=Settings().file_root_paths)
            fetcher = Fetcher(download)
            self._strategies = (FileStrategy(fetcher), InferenceStrategy(fetcher, self.registry))
        file, inference = self._strategies
        return inference if self.params.method == "inference" else file

    def run_specs_json(self, specs: list[TaskSpec]) -> list[str]:
        """:meth:`run_specs`, each result as JSON (what a worker publishes)."""
        return [r.model_dump_json() for r in self.run_specs(specs)]

    def run_specs(self, specs: list[TaskSpec]) -> list[TaskCompletionResult]:
        """Run the strategy on the batch with this stage's parameters; one result per spec, in order."""
        mine = [s.model_copy(update={"params": self.wire, "kind": "agent"}) for s in specs]
        results = self._strategy().run(mine)
        wrong = [s for s in mine if self.stage_uuid is not None and str(s.stage_uuid) != self.stage_uuid]
        if not wrong:
            return results
        # Same guard as any handler: a spec of another stage is refused, not labelled.
        bad = {s.uuid for s in wrong}
        return [
            r.model_copy(
                update={
                    "success": False,
                    "pathway": None,
                    "labels": None,
                    "error": f"task {r.task_uuid} is not in stage '{self.stage_title}'; "
                    "route specs to runner.agent_for(spec.stage_uuid)",
                }
            )
            if r.task_uuid in bad
            else r
            for r in results
        ]


def totask_stage(
    runner: RunnerBase,
    stage: str,
    params: StrategyParams | Mapping[str, Any],
    *,
    download: DownloadSettings | None = None,
    registry: PreProcessorRegistry | None = None,
    overwrite: bool = False,
) -> ToTaskStageAgent:
    """Register a ToTask strategy as the handler of an agent stage.

    Args:
        runner: the (Queue)Runner to register on.
        stage: the agent stage's title or UUID.
        params: strategy parameters: ``method``, ``target_specification_name`` or
            ``pre_processor``, ``pre_processor_params``, optional ``converter`` and ``route``.
        download: download limits and allowed roots (default: from ANNOFLOW_FILE_ROOTS, read on first use).
        registry: pre-processors by name (default: the built-in registry).
        overwrite: replace a handler already registered for the stage.

    Returns:
        The registered handler.

    Raises:
        InvalidInputError: invalid parameters, the stage is taken (without ``overwrite``), or,
            when the runner is bound, the stage is not an agent stage or the route names a
            pathway the stage does not have.
    """
    try:
        parsed = params if isinstance(params, StrategyParams) else StrategyParams.model_validate(dict(params))
    except ValueError as e:
        raise InvalidInputError(f"ToTask stage {stage!r}: invalid parameters: {e}") from e
    agent = ToTaskStageAgent(runner, str(stage), parsed, download=download, registry=registry, overwrite=overwrite)
    # Register through the runner's own decorator so binding and the duplicate check are the same.
    registered = runner.stage(stage, include_labels=True, overwrite=overwrite)(_not_called)
    runner.agents[runner.agents.index(registered)] = agent
    agent.stage_uuid, agent.stage_title = registered.stage_uuid, registered.stage_title
    if parsed.route is not None and runner.workflow is not None and agent.stage_uuid is not None:
        have = {p.name for p in runner.workflow.stages[agent.stage_uuid].pathways}
        missing = [n for n in (parsed.route.high, parsed.route.low) if n not in have]
        if missing:
            raise InvalidInputError(
                f"ToTask stage {stage!r}: route names pathway(s) {missing} the stage does not have "
                f"(it has {sorted(have)}); fix route.high / route.low"
            )
    return agent
