"""Bad input to the onnx pre-processor: one clear line each when the run's parameters are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.errors import InvalidInputError
from common.totask.preprocessors import OnnxDetector, PreProcessorRegistry
from tests.unit.totask.helpers import params_for


def _check(params: Any) -> str:
    registry = PreProcessorRegistry()
    registry.register("onnx", OnnxDetector)
    with pytest.raises(InvalidInputError) as info:
        registry.ensure_ready("onnx", timeout=1, params=params)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    # Given a model_path that holds a PNG, not an ONNX graph
    fake = tmp_path / "detector.onnx"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    # When the run's parameters are checked
    msg = _check(params_for(fake))
    # Then the one line says it is not an ONNX model and how to get one
    assert "is not an ONNX model" in msg and "export" in msg


def test_a_missing_model_file_and_a_missing_model_path_are_refused(tmp_path: Path) -> None:
    # Given a model_path to nowhere, and no model_path at all
    # When checked
    # Then each says what to give
    assert "is not a file" in _check(params_for(tmp_path / "nope.onnx"))
    assert "model_path is missing" in _check(params_for("", model_path=None))


def test_an_input_size_the_model_was_not_exported_with_is_refused(onnx_models: Any, tmp_path: Path) -> None:
    # Given a model whose input is (batch, 3, 64, 64)
    path = onnx_models.yolo_model(tmp_path / "m.onnx")
    # When the parameters ask for 320x320
    msg = _check(params_for(path, input_size=320))
    # Then the line names both sizes and the fix
    assert "input_size is 320x320" in msg and "(?, 3, 64, 64)" in msg and "set input_size to 64x64" in msg


def test_a_model_with_dynamic_size_that_cannot_take_the_input_size_is_refused(onnx_models: Any, tmp_path: Path) -> None:
    # Given a model with dynamic height and width whose anchors fit only 64x64
    path = onnx_models.yolo_model(tmp_path / "m.onnx", spatial=False)
    # When the parameters ask for 96x96
    msg = _check(params_for(path, input_size=96))
    # Then the trial run's failure says to use the export size
    assert "fails on a 96x96 input" in msg and "exported with" in msg


def test_a_model_whose_input_is_not_an_image_is_refused(onnx_models: Any, tmp_path: Path) -> None:
    # Given a model with a (batch, 10) input
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
    )
    path = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    # When checked
    msg = _check(params_for(path))
    # Then it asks for an NCHW image input
    assert "not (batch, 3, height, width)" in msg


def test_a_class_list_that_does_not_match_the_model_is_refused(onnx_models: Any, tmp_path: Path) -> None:
    # Given a YOLO model of 3 classes
    path = onnx_models.yolo_model(tmp_path / "m.onnx")
    # When 80 class names are given
    msg = _check(params_for(path, class_names=[f"c{i}" for i in range(80)]))
    # Then the line says 80 given, 3 held
    assert "class_names lists 80 classes" in msg and "holds 3" in msg


def test_a_class_list_that_disagrees_with_the_models_own_names_is_refused(onnx_models: Any, tmp_path: Path) -> None:
    # Given a model whose metadata names 3 classes
    path = onnx_models.yolo_model(tmp_path / "m.onnx", names_metadata=["a", "b", "c"])
    # When 2 class names are given
    msg = _check(params_for(path, class_names=["a", "b"]))
    # Then the metadata's count is named
    assert "class_names lists 2 classes" in msg and "exported with 3" in msg
