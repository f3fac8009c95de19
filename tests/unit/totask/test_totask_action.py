"""ToTaskAction's parameters and critical checks: the seed's messages, each run recorded FAILED, nothing touched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from common.enums import Role
from common.errors import InvalidParametersError
from common.settings import Settings
from common.store import Store
from common.totask.params import PreProcessorParams
from common.totask.preprocessors import InferenceItem, Prediction, PreProcessorRegistry
from common.workflow import Workflow
from producer.totask.action import ToTaskAction, ToTaskOptions
from tests.helpers import make_project

BOT = "bot@annoflow.test"


class SleepingModel:
    """An in-process plugin that loads but never reports ready."""

    name = "sleepy"
    version = "0"
    needs_bytes = True

    def load(self) -> None:
        pass

    def health(self) -> bool:
        return False

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        return [[] for _ in batch]


def _params(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "File_Based_Annotation",
        "project": "apples",
        "agent": BOT,
        "task_filters": {"status": "pending", "data_collection": "fruit"},
        "method": "file",
        "target_specification_name": "annotation_data",
    }
    return {**base, **over}


def _start(store: Store, tmp: Path, params: dict[str, Any], registry: PreProcessorRegistry | None = None) -> Any:
    options = ToTaskOptions(workers=0, ready_timeout=0.2)
    settings = Settings(home=tmp / "home")
    return ToTaskAction(params, store=store, settings=settings, options=options, registry=registry).start()


def test_invalid_parameters_are_all_reported_at_once() -> None:
    # Given parameters with a blank-containing name, no project, an unknown method and a stray key
    bad = {"name": "has space", "agent": 1, "method": "magic", "colour": "red"}
    # When the action is made
    with pytest.raises(InvalidParametersError) as info:
        ToTaskAction(bad, store=None, settings=Settings(home=Path("/nonexistent")))  # type: ignore[arg-type]
    # Then every problem is listed with its field
    fields = {p.split(":", 1)[0] for p in info.value.problems}
    assert {"name", "project", "method", "colour"} <= fields
    assert any("use '_' instead" in p for p in info.value.problems)


def test_each_critical_error_stops_the_run_with_the_seed_message(
    store: Store, seed_workflow: Workflow, tmp_path: Path
) -> None:
    # Given a project with data, an annotator agent, a reviewer, and an empty second project
    project = make_project(
        store, seed_workflow, ["a.jpg", "b.jpg"], users={BOT: Role.ANNOTATOR, "rev@x.org": Role.REVIEWER}
    )
    store.create_project("empty", seed_workflow)
    store.set_role(store.get_project("empty").id, BOT, Role.ANNOTATOR)
    registry = PreProcessorRegistry()
    registry.register("sleepy", SleepingModel)
    cases = [
        (_params(project="nope"), "no project 'nope'"),
        (_params(agent="ghost@x.org"), "Agent not found: 'ghost@x.org'"),
        (_params(agent="rev@x.org"), "has role reviewer"),
        (_params(project="empty", task_filters={}), "Project has no data collection"),
        (_params(task_filters={"data_collection": "veg"}), "Project has no data collection veg"),
        (_params(task_filters={"data_title": "zzz"}), "No tasks found matching filters"),
        (_params(), "Target specification not found"),
        (_params(method="inference", pre_processor="sleepy"), "Pre-processor not active: 'sleepy'"),
        (_params(method="inference", pre_processor=789), "Pre-processor not found: '789'"),
    ]
    for params, expected in cases:
        # When the run starts
        result = _start(store, tmp_path, params, registry)
        # Then it fails before any work, with the seed's message, and the run says so
        assert result["status"] == "FAILED", params
        assert expected in result["message"], (expected, result["message"])
        run = store.get_run(result["run_id"])
        assert run.status == "FAILED" and run.kind == "totask" and expected in run.message
    # And no task was claimed and no label row written
    tasks = list(store.iter_tasks(project.id))
    assert all(t.lease_token is None and t.attempts == 0 for t in tasks)
    assert all(store.get_label_row(project.id, t.data_hash).version == 0 for t in tasks)
