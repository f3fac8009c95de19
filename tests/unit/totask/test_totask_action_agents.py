"""ToTask strategies as agent-stage handlers: registration, route checks, routing by confidence."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from common.errors import InvalidInputError
from common.models import TaskCompletionResult
from common.runner import QueueRunner
from common.totask.agents import ToTaskStageAgent, totask_stage
from common.totask.params import PreProcessorParams
from common.totask.preprocessors import InferenceItem, Prediction, PreProcessorRegistry
from common.workflow import Workflow, parse_workflow
from tests.unit.totask.test_totask_strategies import make_spec

WORKFLOW = {
    "name": "ActiveLearning",
    "start": "Pre-label",
    "stages": [
        {"title": "Pre-label", "type": "agent", "pathways": {"confident": "Complete", "uncertain": "Review"}},
        {"title": "Review", "type": "review", "pathways": {"approve": "Complete", "reject": "Complete"}},
        {"title": "Complete", "type": "complete"},
    ],
}


class ScoreByName:
    """A fake model: one car per image, scored by the image name (``sure-*`` 0.95, else 0.6)."""

    name = "score-by-name"
    version = "1"
    needs_bytes = False

    def load(self) -> None:
        pass

    def health(self) -> bool:
        return True

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        out: list[Prediction] = []
        for item in batch:
            score = 0.95 if "/sure-" in item.url else 0.6
            box = {"x": 1, "y": 1, "width": 30, "height": 30}
            out.append([{"id": "car", "class_id": 1, "type": "bbox", "coordinates": box, "score": score}])
        return out


def _setup() -> tuple[Workflow, QueueRunner, PreProcessorRegistry]:
    wf = parse_workflow(WORKFLOW, "al")
    reg = PreProcessorRegistry()
    reg.register("score-by-name", ScoreByName)
    return wf, QueueRunner(project="al", workflow=wf), reg


PARAMS: dict[str, Any] = {
    "method": "inference",
    "pre_processor": "score-by-name",
    "pre_processor_params": {"confidence_threshold": 0.5},
    "route": {"threshold": 0.9, "high": "confident", "low": "uncertain"},
}


def test_stage_handler_routes_by_confidence() -> None:
    # Given a ToTask inference handler on the agent stage, routing sure tasks to Complete
    wf, runner, reg = _setup()
    agent = totask_stage(runner, "Pre-label", PARAMS, registry=reg)
    stage = wf.stage("Pre-label")
    pathways = {p.name: uuid.UUID(p.uuid) for p in stage.pathways}
    assert runner.agent_for("Pre-label") is agent and agent.include_labels
    specs = [
        make_spec({"image": f"http://img/{name}.jpg"}, {}, kind="agent", pathways=pathways)
        for name in ("sure-1", "unsure-2", "sure-3")
    ]
    specs = [s.model_copy(update={"stage_uuid": uuid.UUID(stage.uuid)}) for s in specs]

    # When the pipeline calls it with the batch's spec JSON (no params in the specs: the stage holds them)
    results = [TaskCompletionResult.model_validate_json(r) for r in agent([s.model_dump_json() for s in specs])]

    # Then every task is labelled with provenance and routed by its score
    assert all(r.success and r.labels is not None for r in results)
    assert [r.pathway for r in results] == [pathways["confident"], pathways["uncertain"], pathways["confident"]]
    first = results[0].labels
    assert first is not None and first.objects[0]["provenance"]["pre_processor"] == "score-by-name"


def test_registration_errors_say_how_to_fix_them() -> None:
    # Given a runner bound to the workflow
    wf, runner, reg = _setup()
    # When a route names a pathway the stage lacks
    # Then registering fails and names the stage's pathways
    bad = {**PARAMS, "route": {"threshold": 0.9, "high": "done", "low": "uncertain"}}
    with pytest.raises(InvalidInputError, match=r"route names pathway\(s\) \['done'\]"):
        totask_stage(runner, "Pre-label", bad, registry=reg)
    # When the stage is not an agent stage, or parameters are invalid
    with pytest.raises(InvalidInputError, match="not an agent stage"):
        totask_stage(QueueRunner(project="al", workflow=wf), "Review", PARAMS, registry=reg)
    with pytest.raises(InvalidInputError, match="target_specification_name: required"):
        totask_stage(QueueRunner(project="al", workflow=wf), "Pre-label", {"method": "file"})
    # When a stage gets a second handler without overwrite
    runner2 = QueueRunner(project="al", workflow=wf)
    totask_stage(runner2, "Pre-label", PARAMS, registry=reg)
    with pytest.raises(InvalidInputError, match="already has a handler"):
        totask_stage(runner2, "Pre-label", PARAMS, registry=reg)
    # Then with overwrite it replaces the first
    again = totask_stage(runner2, "Pre-label", PARAMS, registry=reg, overwrite=True)
    assert isinstance(again, ToTaskStageAgent) and runner2.agents == [again]
