"""The pipeline's Celery app: JSON only, late acks, one batch per child, limits in order, events on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.celery_app import PipelineSettings, make_celery_app, stage_queue_name, stage_task_name
from common.settings import Settings


def test_the_app_is_json_only_acks_late_and_sends_events(tmp_path: Path) -> None:
    # Given the app a deployment builds, with time limits below the visibility timeout
    pipeline = PipelineSettings(soft_time_limit=50, hard_time_limit=60, visibility_timeout=600)

    # When it is built for a Redis broker
    conf = make_celery_app(Settings(broker_url="redis://127.0.0.1:6379/0", home=tmp_path), pipeline).conf

    # Then nothing but JSON is accepted or written, on every channel
    assert conf.accept_content == ["json"]
    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == ("json", "json", "json")
    # and a message is acknowledged after its batch ran, and put back if the child running it dies
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    # and each child holds one batch at a time (a batch is already many tasks)
    assert conf.worker_prefetch_multiplier == 1
    # and the handler hears of the soft limit before the hard one, both before Redis redelivers
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (50, 60)
    assert conf.broker_transport_options["visibility_timeout"] == 600
    # and workers send task events for Flower; results go to the results queue, not Celery's backend
    assert conf.worker_send_task_events is True and conf.task_ignore_result is True


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"soft_time_limit": 60, "hard_time_limit": 60}, "ANNOFLOW_SOFT_TIME_LIMIT (60) must be below"),
        ({"hard_time_limit": 400, "visibility_timeout": 300}, "ANNOFLOW_HARD_TIME_LIMIT (400) must be below"),
    ],
)
def test_time_limits_out_of_order_are_refused_with_the_fix(limits: dict[str, float], message: str) -> None:
    # When the limits are not soft < hard < visibility timeout
    with pytest.raises(ValidationError) as refused:
        PipelineSettings(**limits)

    # Then the error names the variables and says which way to move them
    assert message in str(refused.value)
    assert "lower the soft limit" in str(refused.value) or "raise the visibility timeout" in str(refused.value)


def test_queue_and_task_names_read_well_and_are_safe() -> None:
    # When a project and a stage title with spaces and symbols name a queue and a task
    # Then both are lowercase dotted names that any broker (and a file name) accepts
    assert stage_queue_name("Apples & Pears", "Pre-label v2") == "annoflow.apples-pears.pre-label-v2"
    assert stage_task_name("Apples & Pears", "Pre-label v2") == "annoflow.stage.apples-pears.pre-label-v2"
