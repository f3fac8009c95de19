"""The v2 inference protocol client against a real KServe ModelServer on loopback, serving a tiny ONNX detector."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.errors import InvalidInputError, NotFoundError
from common.totask.preprocessors import PreProcessorRegistry, V2PreProcessor
from tests.packages import require_module
from tests.servers import free_port, wait_for_http
from tests.unit.totask.helpers import CLASS_NAMES, boxes_of, items, params_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A KServe ModelServer process serving ``tiny`` (a 3-class YOLO-style 64x64 detector); its base URL."""
    require_module("kserve")
    require_module("onnx")
    from tests.unit.totask import onnx_models

    path = onnx_models.yolo_model(tmp_path_factory.mktemp("kserve") / "tiny.onnx")
    port = free_port()
    cmd = [sys.executable, "-m", "tests.integration.kserve_model", "tiny", str(path)]
    cmd += ["--http_port", str(port), "--enable_grpc", "false", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/v2/health/ready", 60, "KServe ModelServer")
        yield url, onnx_models
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_batch_is_detected_by_the_served_model(server: tuple[str, Any]) -> None:
    # Given the served detector named as a v2 model, and its parameters
    url, models = server
    registry = PreProcessorRegistry()
    params = params_for("", model_path=None)
    pre = registry.ensure_ready(f"v2+{url}/v2/models/tiny", timeout=10, params=params)
    assert isinstance(pre, V2PreProcessor)
    # When three images go to it as one batch (one letterboxed, wider than tall)
    images = [
        models.square_image(),
        models.square_image(box=(64, 64, 96, 96), color="green"),
        models.square_image(128, 64, (0, 0, 32, 32), "blue"),
    ]
    preds = pre.predict(items(*images), params)
    # Then each square is found where it was drawn, with its class name
    assert [boxes_of(p) for p in preds] == [
        [("red", 32.0, 0.0, 32.0, 32.0)],
        [("green", 64.0, 64.0, 32.0, 32.0)],
        [("blue", 0.0, 0.0, 32.0, 32.0)],
    ]


def test_the_server_is_ready_and_a_missing_model_is_not(server: tuple[str, Any]) -> None:
    # Given the server
    url, _ = server
    # When readiness is asked for the served model and for another
    # Then the served one is ready and the other is not, and its metadata is refused by name
    assert V2PreProcessor.from_url(f"v2+{url}/v2/models/tiny").health()
    other = V2PreProcessor.from_url(f"v2+{url}/v2/models/other")
    assert not other.health()
    with pytest.raises(NotFoundError, match="other"):
        other.check(params_for("", model_path=None))


def test_a_wrong_input_size_and_class_list_fail_at_start(server: tuple[str, Any]) -> None:
    # Given the served 64x64, 3-class detector
    url, _ = server
    pre = V2PreProcessor.from_url(f"v2+{url}/v2/models/tiny")
    # When a run asks for 320x320, or for 4 classes
    # Then each is refused in one line before any task
    with pytest.raises(InvalidInputError, match="input_size is 320x320"):
        pre.check(params_for("", model_path=None, input_size=320))
    with pytest.raises(InvalidInputError, match="class_names lists 4 classes"):
        pre.check(params_for("", model_path=None, class_names=[*CLASS_NAMES, "x"]))
