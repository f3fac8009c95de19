"""The wire contract, checked with the public encord-agents package's own models.

annoflow's task specs and completion results must validate against
encord-agents' models, and JSON those models produce must validate against
annoflow's.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from common.models import TaskCompletionResult, TaskSpec
from common.runner import QueueRunner
from tests.unit.runner.test_dependencies import PATHWAYS, STAGE, make_spec

agents_models = pytest.importorskip("encord_agents.tasks.models", reason="pip install -e '.[dev]' (encord-agents)")
agent_stage = pytest.importorskip("encord.workflow.stages.agent")

TASK_FIELDS = ("uuid", "data_hash", "data_title", "label_branch_name", "status", "assignee", "created_at", "updated_at")


def _their_result_from(ours_json: str) -> object:
    return agents_models.TaskCompletionResult.model_validate_json(ours_json)


def test_our_task_spec_validates_as_their_task_config_and_agent_task() -> None:
    # Given an annoflow task spec as the producer publishes it
    spec = make_spec("apples_01.jpg")
    text = spec.model_dump_json()

    # When encord-agents' task config and agent task models read it
    config = agents_models.AgentTaskConfig.model_validate_json(text)
    task = agent_stage.AgentTask.model_validate_json(text)

    # Then every task field means the same on both sides
    assert (config.task_uuid, config.data_hash, config.data_title, config.label_branch_name) == (
        spec.uuid, spec.data_hash, spec.data_title, spec.label_branch_name,
    )  # fmt: skip
    assert task.uuid == spec.uuid and task.status.value == spec.status and task.assignee is None
    assert task.created_at == spec.created_at and task.updated_at == spec.updated_at
    assert set(TASK_FIELDS) <= set(json.loads(text))


def test_their_agent_task_json_validates_as_our_task_spec() -> None:
    # Given an agent task as encord-agents' queue producer serialises it
    at = datetime.now(UTC)
    theirs = agent_stage.AgentTask(
        uuid=uuid.uuid4(), created_at=at, updated_at=at, status="REOPENED", data_hash=uuid.uuid4(),
        data_title="apples_02.jpg", label_branch_name="main", assignee="ann@acme.com", last_actioned_by=None,
    )  # fmt: skip
    their_json = json.loads(theirs.model_dump_json())

    # When annoflow reads it, with the stage, project and lease it adds
    ours = TaskSpec.model_validate(
        {**their_json, "project_uuid": "p1", "project_name": "apples", "stage_uuid": str(STAGE),
         "stage_title": "Pre-label", "lease_token": "L1:1"}
    )  # fmt: skip

    # Then the task fields arrive unchanged
    for name in TASK_FIELDS:
        theirs_value = getattr(theirs, name)
        assert getattr(ours, name) == getattr(theirs_value, "value", theirs_value), name


def test_our_results_validate_as_theirs() -> None:
    # Given results from a real wrapped handler: a success along a pathway, a stay, and a failure
    runner = QueueRunner(project="apples")
    answers = iter(["labelled", None, RuntimeError("model not loaded")])

    @runner.stage("Pre-label")
    def handler() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    specs = [make_spec(), make_spec(), make_spec()]
    texts = handler([s.model_dump_json() for s in specs])

    # When encord-agents' TaskCompletionResult reads each
    theirs = [agents_models.TaskCompletionResult.model_validate_json(t) for t in texts]

    # Then task, stage, success, pathway (a UUID) and error agree
    ok, stay, failed = theirs
    assert ok.task_uuid == specs[0].uuid and ok.stage_uuid == STAGE and ok.success is True
    assert ok.pathway == PATHWAYS["labelled"] and ok.error is None
    assert stay.success is True and stay.pathway is None
    assert failed.success is False and failed.pathway is None and "model not loaded" in failed.error


def test_their_results_validate_as_ours() -> None:
    # Given results as encord-agents builds them, a success and a failure
    task, stage, pathway = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    good = agents_models.TaskCompletionResult(task_uuid=task, stage_uuid=stage, success=True, pathway=pathway)
    bad = agents_models.TaskCompletionResult(task_uuid=task, success=False, error="Traceback ...")

    # When annoflow reads their JSON
    ours_good = TaskCompletionResult.model_validate_json(good.model_dump_json())
    ours_bad = TaskCompletionResult.model_validate_json(bad.model_dump_json())

    # Then the fields agree, and annoflow's additions take their defaults
    assert (ours_good.task_uuid, ours_good.stage_uuid, ours_good.success, ours_good.pathway) == (
        task, stage, True, pathway,
    )  # fmt: skip
    assert ours_good.error is None and ours_good.labels is None and ours_good.priority is None
    assert ours_bad.success is False and ours_bad.error == "Traceback ..." and ours_bad.stage_uuid is None
