"""The QueueRunner: stage validation, what handlers return, and a producer you write yourself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy
import pytest

from common.errors import InvalidInputError, NotFoundError
from common.models import LabelPayload, TaskCompletionResult
from common.runner import HandlerResult, LabelRowEditor, QueueRunner, StageAgent
from common.store import DataUnit, Store
from common.store.apply import apply_results
from common.workflow import Workflow, load_workflow
from tests.helpers import make_project
from tests.unit.runner.test_dependencies import PATHWAYS, STAGE, make_spec

AGENTS = Path(__file__).parents[2] / "fixtures" / "agent_pipeline.yaml"


@pytest.fixture
def wf() -> Workflow:
    return load_workflow(AGENTS)


def _one(agent: object, text: str) -> TaskCompletionResult:
    out = agent(text)  # type: ignore[operator]
    assert isinstance(out, str)
    return TaskCompletionResult.model_validate_json(out)


def scripted(runner: QueueRunner, answers: Iterator[object]) -> StageAgent:
    """A Pre-label handler that answers (or raises) the next of ``answers`` for each task."""

    @runner.stage("Pre-label")
    def handler() -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_a_stage_that_is_not_an_agent_stage_is_refused_with_the_line_to_use(wf: Workflow) -> None:
    # Given a runner checked against the workflow
    runner = QueueRunner(project="apples", workflow=wf)

    # When handlers are declared for a missing stage and for a review stage
    with pytest.raises(InvalidInputError) as missing:
        runner.stage("Pre-labell")(lambda: None)
    with pytest.raises(InvalidInputError) as review:
        runner.stage("Review 1")(lambda: None)

    # Then both errors list the agent stages and the decorator line to use
    for error in (str(missing.value), str(review.value)):
        assert "'Pre-label'" in error and "'Check'" in error and "@runner.stage('Pre-label')" in error
    assert "review stage" in str(review.value)


def test_validation_happens_at_bind_for_a_runner_declared_without_workflow(wf: Workflow) -> None:
    # Given handlers declared before the workflow is known, one by UUID
    runner = QueueRunner(project="apples")
    by_uuid = runner.stage(wf.stage("Check").uuid)(lambda: "ok")
    runner.stage("Annotate")(lambda: None)

    # When the runner is bound, Then the wrong one is named
    with pytest.raises(InvalidInputError, match="Annotate"):
        runner.bind(wf)
    runner.agents = [by_uuid]
    runner.bind(wf)
    assert by_uuid.stage_uuid == wf.stage("Check").uuid and runner.agent_for("Check") is by_uuid


def test_duplicate_stage_needs_overwrite() -> None:
    # Given a runner with a handler for Pre-label
    runner = QueueRunner(project="apples")
    runner.stage("Pre-label")(lambda: "a")

    # When a second is declared, Then it is refused unless overwrite=True
    with pytest.raises(InvalidInputError, match="overwrite=True"):
        runner.stage("Pre-label")(lambda: "b")
    second = runner.stage("Pre-label", overwrite=True, will_set_priority=True)(lambda: "skip")
    assert runner.agents == [second] and second.overwrite and second.will_set_priority
    assert runner.agent_for("Pre-label") is second
    with pytest.raises(NotFoundError, match="Pre-label"):
        runner.agent_for("Check")


def test_handler_answers_become_results_and_never_raise() -> None:
    # Given handlers returning a name, a UUID, None, a struct with priority 0.0, an unknown name and a wrong type
    runner = QueueRunner(project="apples")
    answers = iter(
        [
            "labelled",
            PATHWAYS["skip"],
            None,
            HandlerResult(pathway="skip", priority=0.0),
            "nowhere",
            42,
        ]
    )

    @runner.stage("Pre-label")
    def handler() -> object:
        return next(answers)

    # When each runs on one spec
    results = [_one(handler, make_spec().model_dump_json()) for _ in range(6)]

    # Then each answer is a result; the bad ones are failures saying what to return
    named, by_uuid, stay, struct, unknown, wrong = results
    assert named.pathway == PATHWAYS["labelled"] and by_uuid.pathway == PATHWAYS["skip"]
    assert stay.success and stay.pathway is None and stay.stage_uuid == STAGE
    assert struct.pathway == PATHWAYS["skip"] and struct.priority == 0.0
    assert not unknown.success and unknown.error is not None
    assert "'labelled'" in unknown.error and "'skip'" in unknown.error
    assert not wrong.success and wrong.error is not None and "HandlerResult" in wrong.error
    assert all(r.lease_token == "L1:1" and r.worker for r in results)


def test_result_json_is_the_models_json_and_bad_labels_or_priorities_are_failures() -> None:
    # Given a handler answering a pathway, labels and a priority, staying, failing, and with a bad priority or labels
    runner = QueueRunner(project="apples")
    payload = LabelPayload(version=3, objects=[{"name": "apple", "box": [1, 2, 3, 4]}])
    answers = iter(
        [
            HandlerResult(pathway="labelled", label_row=payload, priority=1),
            HandlerResult(pathway=None, label_row={"version": 1, "objects": []}),  # type: ignore[arg-type]
            None,
            RuntimeError("model server down"),
            HandlerResult(pathway="skip", priority="high"),  # type: ignore[arg-type]
            HandlerResult(pathway="skip", priority=1.5),
            HandlerResult(pathway="skip", label_row={"objects": "nope"}),  # type: ignore[arg-type]
            HandlerResult(pathway="labelled", priority=numpy.float32(0.25)),  # type: ignore[arg-type]
        ]
    )

    handler = scripted(runner, answers)

    # When the specs run through the JSON path a worker uses
    specs = [make_spec() for _ in range(8)]
    texts = handler.run_specs_json(specs)

    # Then each text is exactly what the model would write for the same result
    results = [TaskCompletionResult.model_validate_json(t) for t in texts]
    assert texts == [r.model_dump_json() for r in results]
    labelled, dict_labels, stay, raised, word, too_high, bad_labels, scored = results
    assert labelled.labels == payload and labelled.priority == 1.0 and labelled.pathway == PATHWAYS["labelled"]
    assert dict_labels.success and dict_labels.labels == LabelPayload(version=1)
    assert stay.success and stay.pathway is None and stay.labels is None and stay.error is None
    assert not raised.success and raised.error is not None and "model server down" in raised.error
    assert not word.success and word.error is not None and "'high' is not a number" in word.error
    assert not too_high.success and too_high.error is not None and "outside 0.0..1.0" in too_high.error
    assert not bad_labels.success and bad_labels.error is not None and "LabelRowEditor" in bad_labels.error
    assert scored.success and scored.priority == 0.25  # a numpy score is a number
    assert all(r.task_uuid == s.uuid and r.lease_token == s.lease_token for r, s in zip(results, specs, strict=True))


def test_a_malformed_message_is_refused_not_answered() -> None:
    # Given a handler
    runner = QueueRunner(project="apples")
    handler = runner.stage("Pre-label")(lambda: "labelled")

    # When it is called with something that is not a spec, Then it says what to publish
    with pytest.raises(InvalidInputError, match="TaskSpec"):
        handler('{"hello": 1}')


def test_own_producer_round_trip(store: Store, wf: Workflow) -> None:
    # Given a project with three tasks in Pre-label and a handler that labels them
    project = make_project(store, wf, ["a.jpg", "b.jpg", "skip.jpg"])
    runner = QueueRunner(project="apples")

    @runner.stage("Pre-label")
    def pre_label(unit: DataUnit, label_row: LabelRowEditor) -> str:
        if unit.title == "skip.jpg":
            return "skip"
        label_row.add({"name": "apple"})
        return "labelled"

    # When a hand-written producer queues the specs, runs them and applies the results
    queue: list[str] = []
    for agent in runner.get_agent_stages(store):
        queue.extend(agent.get_tasks(batch_size=2))
    results = [TaskCompletionResult.model_validate_json(r) for r in pre_label(queue)]
    outcome = apply_results(store, results, num_retries=1)

    # Then every task moved on exactly once, with its labels
    assert len(queue) == 3 and outcome.applied == 3
    counts = store.counts(project.id)
    assert counts[wf.stage("Review 1").uuid] == {"NEW": 2}
    assert counts[wf.stage("Archive").uuid] == {"COMPLETED": 1}
    labelled = [t for t in store.iter_tasks(project.id) if t.data_title != "skip.jpg"]
    assert all(len(store.get_label_row(project.id, t.data_hash).objects) == 1 for t in labelled)
    assert list(runner.agents[0].get_tasks()) == []


def test_results_for_a_list_are_a_list_in_order() -> None:
    # Given a handler and two specs
    runner = QueueRunner(project="apples")
    handler = runner.stage("Pre-label")(lambda: None)
    specs = [make_spec(), make_spec()]

    # When called with a list
    out = handler([s.model_dump_json() for s in specs])

    # Then one result per spec comes back, in order
    assert [TaskCompletionResult.model_validate_json(r).task_uuid for r in out] == [s.uuid for s in specs]


def test_a_pathway_uuid_in_upper_case_is_the_same_pathway() -> None:
    # Given a stage whose pathway UUID has letters, and a handler that answers with it in upper case
    labelled = uuid.UUID("abcdef12-3456-4789-8abc-def123456789")
    spec = make_spec().model_copy(update={"pathways": {"labelled": labelled}})
    runner = QueueRunner(project="apples")
    handler = runner.stage("Pre-label")(lambda: str(labelled).upper())
    # When it runs, Then the task moves along that pathway
    result = _one(handler, spec.model_dump_json())
    assert result.success and result.pathway == labelled
