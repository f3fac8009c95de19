"""A ToTask run with a bad ONNX model fails at its start, in one line, before any task is claimed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.enums import Role
from common.settings import Settings
from common.store import Store
from common.workflow import Workflow
from producer.totask.action import ToTaskAction, ToTaskOptions
from tests.helpers import make_project
from tests.unit.totask.helpers import CLASS_NAMES

BOT = "bot@annoflow.test"


def _run(store: Store, tmp: Path, pre_processor_params: dict[str, Any]) -> dict[str, Any]:
    params = {
        "name": "Onnx_Annotation",
        "project": "apples",
        "agent": BOT,
        "method": "inference",
        "pre_processor": "onnx",
        "pre_processor_params": pre_processor_params,
    }
    options = ToTaskOptions(workers=0, ready_timeout=1)
    return ToTaskAction(params, store=store, settings=Settings(home=tmp / "home"), options=options).start()


def test_bad_models_stop_the_run_before_any_task_is_claimed(
    store: Store, seed_workflow: Workflow, tmp_path: Path, onnx_models: Any
) -> None:
    # Given a project with images, an annotator agent, a file that is not ONNX and a 3-class 64x64 model
    project = make_project(store, seed_workflow, ["a.jpg", "b.jpg"], users={BOT: Role.ANNOTATOR})
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model")
    model = str(onnx_models.yolo_model(tmp_path / "m.onnx"))
    cases = [
        ({"model_path": str(fake)}, "is not an ONNX model"),
        ({"model_path": model, "input_size": 640}, "input_size is 640x640"),
        ({"model_path": model, "class_names": [*CLASS_NAMES, "extra"]}, "class_names lists 4 classes"),
    ]
    for ppp, expected in cases:
        # When the run starts
        result = _run(store, tmp_path, ppp)
        # Then it fails with one line that says what is wrong
        assert result["status"] == "FAILED", result
        assert expected in result["message"] and "\n" not in result["message"], result["message"]
    # And no task was claimed
    assert all(t.lease_token is None and t.attempts == 0 for t in store.iter_tasks(project.id))
