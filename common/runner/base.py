"""What the sequential Runner and the QueueRunner share: registering and validating stage handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from common.enums import StageType
from common.errors import InvalidInputError, NotFoundError
from common.models import TaskSpec
from common.runner.handlers import StageAgent
from common.specs import build_specs
from common.store.leases import claim_tasks
from common.store.lifecycle import now
from common.store.records import ProjectRecord
from common.store.store import Store
from common.workflow import Workflow

__all__ = ["RunnerBase"]


class RunnerBase:
    """Holds stage handlers in registration order and checks them against a workflow.

    Args:
        project: the project's name or id (required to claim tasks; optional
            for a worker that only runs handlers on specs).
        store: the store to claim tasks from; opened lazily by the Runner otherwise.
        workflow: check ``@runner.stage(...)`` against this workflow as soon
            as it is declared (fail fast).
    """

    def __init__(self, project: str | None = None, *, store: Store | None = None, workflow: Workflow | None = None):
        self.project = project
        self.store = store
        self.workflow: Workflow | None = None
        self.agents: list[StageAgent] = []
        self._project_record: ProjectRecord | None = None
        if workflow is not None:
            self.bind(workflow)

    # ----------------------------------------------------------- registering
    def stage(
        self,
        stage: str | UUID,
        *,
        include_labels: bool | None = None,
        overwrite: bool = False,
        will_set_priority: bool = False,
    ) -> Callable[[Callable[..., Any]], StageAgent]:
        """Register the decorated function as the handler of an agent stage.

        Args:
            stage: the stage's title or UUID.
            include_labels: put the current label row in each task spec; by
                default only when the handler takes a ``LabelRowEditor``.
            overwrite: replace a handler already registered for this stage
                (otherwise that is an error).
            will_set_priority: the handler sets task priorities (informational
                for producers and dashboards).

        Returns:
            A decorator that returns the wrapped handler (a :class:`StageAgent`).

        Raises:
            InvalidInputError: the stage is already registered (without
                ``overwrite``), or, when bound, not an agent stage of the workflow.
        """
        key = str(stage)

        def decorator(handler: Callable[..., Any]) -> StageAgent:
            agent = StageAgent(
                self,
                key,
                handler,
                include_labels=include_labels,
                overwrite=overwrite,
                will_set_priority=will_set_priority,
            )
            if self.workflow is not None:
                self._bind_agent(agent, self.workflow)
            same = [a for a in self.agents if self._same_stage(a, agent)]
            if same and not overwrite:
                raise InvalidInputError(
                    f"stage {key!r} already has a handler ({same[0].handler.__qualname__}); "
                    f"pass @runner.stage({key!r}, overwrite=True) to replace it"
                )
            self.agents = [a for a in self.agents if a not in same]
            self.agents.append(agent)
            return agent

        return decorator

    @staticmethod
    def _same_stage(a: StageAgent, b: StageAgent) -> bool:
        if a.stage_uuid is not None and b.stage_uuid is not None:
            return a.stage_uuid == b.stage_uuid
        return a.stage_key == b.stage_key

    # ------------------------------------------------------------ validating
    def bind(self, workflow: Workflow) -> None:
        """Check every handler's stage against ``workflow`` and learn the stage UUIDs.

        Raises:
            InvalidInputError: a stage does not exist or is not an agent stage;
                the message lists the agent stages and the decorator line to use.
        """
        for agent in self.agents:
            self._bind_agent(agent, workflow)
        self.workflow = workflow

    @staticmethod
    def _bind_agent(agent: StageAgent, workflow: Workflow) -> None:
        agent_stages = [s for s in workflow.stages.values() if s.type is StageType.AGENT]
        hint = (
            "agent stages: "
            + ", ".join(f"'{s.title}' ({s.uuid})" for s in agent_stages)
            + f"; use @runner.stage({agent_stages[0].title!r})"
            if agent_stages
            else "the workflow has no agent stage; add a stage with 'type: agent'"
        )
        try:
            stage = workflow.stage(agent.stage_key)
        except NotFoundError as e:
            raise InvalidInputError(
                f"@runner.stage({agent.stage_key!r}): workflow '{workflow.name}' has no such stage; {hint}"
            ) from e
        if stage.type is not StageType.AGENT:
            raise InvalidInputError(
                f"@runner.stage({agent.stage_key!r}): '{stage.title}' is a {stage.type.value} stage, "
                f"not an agent stage; {hint}"
            )
        agent.stage_uuid, agent.stage_title = stage.uuid, stage.title

    def agent_for(self, stage: str | UUID) -> StageAgent:
        """The wrapped handler of a stage, by UUID, title, or the key it was registered with.

        Raises:
            NotFoundError: no handler serves that stage; the message lists those that do.
        """
        key = str(stage)
        for agent in self.agents:
            if key in (agent.stage_uuid, agent.stage_key, agent.stage_title):
                return agent
        have = ", ".join(repr(a.stage_title or a.stage_key) for a in self.agents) or "none"
        raise NotFoundError(f"no handler is registered for stage {key!r}; handlers serve: {have}")

    # ------------------------------------------------------ claiming tasks
    def get_agent_stages(self, store: Store | None = None) -> list[StageAgent]:
        """The registered handlers, bound to the project's workflow in ``store``.

        Raises:
            InvalidInputError: no store or project given, or a stage is invalid.
            NotFoundError: the project does not exist.
        """
        if store is not None:
            self.store = store
        self._project_in_store()
        return list(self.agents)

    def _project_in_store(self) -> tuple[Store, ProjectRecord]:
        if self.store is None:
            raise InvalidInputError(
                "this runner has no store; pass store=Store.open(URL) to the runner or to get_agent_stages(store)"
            )
        if self.project is None:
            raise InvalidInputError("this runner has no project; pass project='NAME' (--project NAME)")
        if self._project_record is None:
            self._project_record = self.store.get_project(self.project)
            self.bind(self.store.workflow(self._project_record.id))
        return self.store, self._project_record

    def claim_specs(
        self,
        agent: StageAgent,
        *,
        batch_size: int,
        limit: int | None = None,
        lease_seconds: float = 600.0,
        pass_started: datetime | None = None,
    ) -> Iterator[list[TaskSpec]]:
        """Claim the agent stage's waiting tasks batch by batch and yield their specs.

        One pass (from ``pass_started``, default now): a task that is released
        again during the pass (it stayed) waits for the next pass.
        """
        store, project = self._project_in_store()
        assert self.workflow is not None and agent.stage_uuid is not None
        stage = self.workflow.stages[agent.stage_uuid]
        started = pass_started or now()
        left = limit
        while left is None or left > 0:
            size = batch_size if left is None else min(batch_size, left)
            claimed = claim_tasks(store, project.id, stage.uuid, size, lease_seconds, pass_started=started)
            if not claimed:
                return
            yield build_specs(store, project, stage, claimed, include_labels=agent.include_labels)
            if left is not None:
                left -= len(claimed)
