"""The QueueRunner: stage handlers wrapped as functions from task-spec JSON to result JSON.

It runs nothing by itself; a queue does. annoflow's workers call
``runner.agent_for(stage_uuid)(specs)``; your own producer can do the same::

    runner = QueueRunner(project="apples")

    @runner.stage("Pre-label")
    def pre_label(unit: DataUnit) -> str:
        return "labelled"

    # producer side (holds the store)
    for agent in runner.get_agent_stages(store):
        for spec_json in agent.get_tasks():
            queue.put(spec_json)

    # worker side (no store needed)
    result_json = pre_label(queue.get())

    # applier side (holds the store)
    apply_results(store, [TaskCompletionResult.model_validate_json(result_json)], num_retries=3)
"""

from __future__ import annotations

from typing import Any, NoReturn

from common.errors import InvalidInputError
from common.runner.base import RunnerBase
from common.store.store import Store
from common.workflow import Workflow

__all__ = ["QueueRunner"]


class QueueRunner(RunnerBase):
    """Stage handlers for distributed execution; see the module docstring.

    Args:
        project: the project's name or id.
        store: the store, on the producer side only (workers never need it).
        workflow: check handlers against this workflow as they are declared.
    """

    def __init__(self, project: str, *, store: Store | None = None, workflow: Workflow | None = None) -> None:
        super().__init__(project, store=store, workflow=workflow)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InvalidInputError(
            "a QueueRunner is not called; call its wrapped handlers with task-spec JSON "
            "(runner.agent_for(stage)(spec_json)), or start workers with "
            "'annoflow worker --agents module:runner'. Use Runner to run handlers in one process."
        )
