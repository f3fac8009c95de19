"""Answers that cannot go on the wire, and the batch's soft time limit: one task fails, not its batch."""

from __future__ import annotations

from typing import Any

import numpy
from billiard.exceptions import SoftTimeLimitExceeded

from common.models import LabelPayload, TaskCompletionResult
from common.runner import HandlerResult, QueueRunner
from tests.unit.runner.test_dependencies import PATHWAYS, make_spec
from tests.unit.runner.test_queue_runner import scripted


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_numpy_labels_become_plain_numbers_and_an_answer_that_cannot_be_written_fails_only_its_task() -> None:
    # Given a handler answering, task by task: numpy values in its labels, a payload changed
    # after it was built, an error naming an undecodable file, an error with no text, an
    # object JSON cannot hold, and a plain pathway
    runner = QueueRunner(project="apples")
    changed = LabelPayload()
    changed.version = None  # type: ignore[assignment]
    answers: list[Any] = [
        HandlerResult(
            pathway="labelled", label_row=LabelPayload(objects=[{"score": numpy.float32(0.5), "box": numpy.arange(4)}])
        ),
        HandlerResult(pathway="labelled", label_row=changed),
        OSError("cannot open caf\udce9.jpg"),
        _Unprintable(),
        HandlerResult(pathway="labelled", label_row={"objects": [{"model": object()}]}),  # type: ignore[arg-type]
        "labelled",
    ]
    handler = scripted(runner, iter(answers))

    # When one batch of six runs through the worker's JSON path
    texts = handler.run_specs_json([make_spec() for _ in answers])

    # Then every task has its own result, each exactly the model's JSON
    results = [TaskCompletionResult.model_validate_json(t) for t in texts]
    assert texts == [r.model_dump_json() for r in results]
    scored, edited, undecodable, unprintable, opaque, plain = results
    # And the numpy values are plain numbers and lists (what the store can write)
    assert scored.success and scored.labels is not None
    assert scored.labels.objects == [{"score": 0.5, "box": [0, 1, 2, 3]}]
    assert type(scored.labels.objects[0]["score"]) is float
    # And each answer that cannot be written fails its task alone, saying what was wrong
    assert not edited.success and edited.error is not None and "not a label row" in edited.error
    assert not undecodable.success and undecodable.error is not None and "caf\\udce9.jpg" in undecodable.error
    assert not unprintable.success and unprintable.error is not None
    assert "_Unprintable (its message could not be read)" in unprintable.error
    assert not opaque.success and opaque.error is not None and "cannot be stored in a label row" in opaque.error
    assert plain.success and plain.pathway == PATHWAYS["labelled"]


def test_the_batch_soft_time_limit_fails_the_interrupted_task_and_answers_the_rest_unrun() -> None:
    # Given a handler that Celery's soft time limit interrupts on the second task of four
    runner = QueueRunner(project="apples")
    calls: list[int] = []

    @runner.stage("Pre-label")
    def handler() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return "labelled"

    # When the batch runs
    results = handler.run_specs([make_spec() for _ in range(4)])

    # Then the first task's result stands, the second failed on the limit, and the last two
    # were answered at once without running (they are retried, not left to the hard limit)
    done, interrupted, *unrun = results
    assert len(calls) == 2
    assert done.success and done.pathway == PATHWAYS["labelled"]
    assert not interrupted.success and interrupted.error is not None and "soft time limit" in interrupted.error
    assert all(not r.success and r.error is not None and r.error.startswith("not run") for r in unrun)
