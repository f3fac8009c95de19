"""Which agent stages the producer feeds, through which queue and task, and what it reports after each fill."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from common.celery_app import stage_queue_name, stage_task_name
from common.enums import StageType
from common.errors import InvalidInputError
from common.loader import agents_of
from common.workflow import Stage, Workflow

__all__ = ["ProduceObserver", "StagePlan", "plan_stages"]


@dataclass(frozen=True)
class StagePlan:
    """One agent stage the producer feeds."""

    stage: Stage
    stage_key: str
    include_labels: bool
    queue: str
    task_name: str


class ProduceObserver(Protocol):
    """What the producer reports after each fill of a stage queue."""

    def enumerated(self, project: str, stage: str, tasks: int, seconds: float) -> None:
        """``tasks`` were claimed, built and published to ``stage``'s queue in ``seconds``."""
        ...


def plan_stages(runner: Any, workflow: Workflow, project_name: str) -> list[StagePlan]:
    """Bind the runner to the workflow and name each agent stage's queue and task.

    Raises:
        InvalidInputError: a handler names a stage that does not exist or is not an agent stage.
    """
    bind = getattr(runner, "bind", None)
    if callable(bind):
        bind(workflow)
    queue_project = getattr(runner, "project", None) or project_name
    plans = []
    for agent in agents_of(runner):
        stage = workflow.stages.get(str(getattr(agent, "stage_uuid", "") or "")) or _agent_stage(
            workflow, agent.stage_key
        )
        plans.append(
            StagePlan(
                stage=stage,
                stage_key=agent.stage_key,
                include_labels=bool(agent.include_labels),
                queue=stage_queue_name(queue_project, agent.stage_key),
                task_name=stage_task_name(queue_project, agent.stage_key),
            )
        )
    return plans


def _agent_stage(workflow: Workflow, key: str) -> Stage:
    agents = [s for s in workflow.stages.values() if s.type is StageType.AGENT]
    stage = workflow.stages.get(key) or next((s for s in workflow.stages.values() if s.title == key), None)
    if stage is None or stage.type is not StageType.AGENT:
        lines = "; ".join(f'@runner.stage("{s.title}")' for s in agents) or "none (add an agent stage)"
        raise InvalidInputError(
            f"stage {key!r} is not an agent stage of workflow '{workflow.name}'; use one of: {lines}"
        )
    return stage
