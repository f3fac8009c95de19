"""A batch with specs a worker cannot read: the valid ones run, the others are answered with the reason."""

from __future__ import annotations

import json

from common.models import TaskCompletionResult
from tests.unit.runner.test_dependencies import make_spec
from workers.tasks import split_readable


def test_valid_specs_run_and_each_invalid_one_that_names_its_task_is_answered() -> None:
    # Given a stored batch (one JSON array): a valid spec, one with a bad field, and one naming no lease
    good, bad = make_spec(), make_spec()
    items = [json.loads(good.model_dump_json()), {**json.loads(bad.model_dump_json()), "status": None}, {"uuid": "x"}]
    # When the worker splits it
    readable, failed = split_readable(json.dumps(items).encode(), "host:1")
    # Then the valid spec runs, the bad one is a failed result for its task and lease, saying why,
    # and the one that names no lease is left to it
    assert [s.uuid for s in readable] == [good.uuid]
    (result,) = [TaskCompletionResult.model_validate_json(f) for f in failed]
    assert result.task_uuid == bad.uuid and result.lease_token == bad.lease_token and not result.success
    assert result.error is not None and "status" in result.error and "same annoflow version" in result.error


def test_specs_that_are_not_json_answer_nothing() -> None:
    # Given a batch whose specs are not JSON, When it is split, Then nothing runs and nothing is answered
    assert split_readable(["{not json"], "host:1") == ([], [])
