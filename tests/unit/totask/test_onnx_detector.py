"""The onnx pre-processor on tiny detectors built at test time: layouts, letterbox, true batching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.totask.preprocessors import REGISTRY, OnnxDetector
from common.totask.preprocessors.onnx_model import OnnxModel, providers_for
from tests.unit.totask.helpers import boxes_of, items, params_for


@pytest.mark.parametrize("layout", ["v8", "v8t", "v5", "boxes"])
def test_each_output_layout_finds_the_coloured_square(onnx_models: Any, tmp_path: Path, layout: str) -> None:
    # Given a detector with a YOLO-style (v8, transposed v8, v5) or boxes/scores/classes output
    path = tmp_path / f"{layout}.onnx"
    if layout == "boxes":
        onnx_models.boxes_model(path)
    else:
        onnx_models.yolo_model(path, layout=layout)
    params = params_for(path)
    detector = OnnxDetector()
    detector.load()
    detector.check(params)
    # When it predicts on a 128x128 image with a red square at x 32..64, y 0..32
    (pred,) = detector.predict(items(onnx_models.square_image()), params)
    # Then the square comes back as one 'red' box in the image's own pixels
    assert boxes_of(pred) == [("red", 32.0, 0.0, 32.0, 32.0)]
    assert pred[0].class_id == 0 and pred[0].score == 1.0


def test_letterbox_maps_boxes_back_onto_a_wide_image(onnx_models: Any, tmp_path: Path) -> None:
    # Given a 64x64 detector and a 128x64 image (letterboxed with 16 px of padding above and below)
    params = params_for(onnx_models.yolo_model(tmp_path / "m.onnx"))
    detector = OnnxDetector()
    # When a blue square at the image's top-left corner is detected
    (pred,) = detector.predict(items(onnx_models.square_image(128, 64, (0, 0, 32, 32), "blue")), params)
    # Then its box is where it was drawn, not where the padding put it
    assert boxes_of(pred) == [("blue", 0.0, 0.0, 32.0, 32.0)]


def test_a_batch_is_one_model_run_over_the_dynamic_batch_axis(
    onnx_models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a detector with a dynamic batch axis and 5 different images
    params = params_for(onnx_models.yolo_model(tmp_path / "m.onnx"))
    detector = OnnxDetector()
    detector.check(params)
    images = [
        onnx_models.square_image(box=(x, y, x + 32, y + 32), color=c)
        for x, y, c in [(0, 0, "red"), (32, 32, "green"), (64, 64, "blue"), (96, 0, "red"), (0, 96, "green")]
    ]
    one_by_one = [detector.predict(items(img), params)[0] for img in images]
    shapes: list[tuple[int, ...]] = []
    real_run = OnnxModel.run

    def spy(self: OnnxModel, name: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        shapes.append(tensor.shape)
        return real_run(self, name, tensor)

    monkeypatch.setattr(OnnxModel, "run", spy)
    # When they are predicted as one batch
    batched = detector.predict(items(*images), params)
    # Then the model ran once on a (5, 3, 64, 64) tensor and each image got its own answer
    assert shapes == [(5, 3, 64, 64)]
    assert [boxes_of(p) for p in batched] == [boxes_of(p) for p in one_by_one]
    assert [boxes_of(p)[0][0] for p in batched] == ["red", "green", "blue", "red", "green"]


def test_a_fixed_batch_axis_is_padded(onnx_models: Any, tmp_path: Path) -> None:
    # Given a model exported with a fixed batch of 4
    params = params_for(onnx_models.yolo_model(tmp_path / "m.onnx", batch=4))
    detector = OnnxDetector()
    # When 5 images are predicted
    preds = detector.predict(items(*[onnx_models.square_image()] * 5), params)
    # Then all five are answered (one full run and one padded)
    assert [len(p) for p in preds] == [1] * 5


def test_class_names_default_to_the_models_metadata(onnx_models: Any, tmp_path: Path) -> None:
    # Given a model that carries Ultralytics-style names metadata and parameters without class_names
    path = onnx_models.yolo_model(tmp_path / "m.onnx", names_metadata=["rouge", "vert", "bleu"])
    params = params_for(path, class_names=None)
    # When it predicts
    (pred,) = OnnxDetector().predict(items(onnx_models.square_image()), params)
    # Then the label comes from the model
    assert pred[0].properties["label"] == "rouge"


def test_the_version_names_the_model_file_and_its_digest(onnx_models: Any, tmp_path: Path) -> None:
    # Given the registry's onnx pre-processor and a model
    path = onnx_models.yolo_model(tmp_path / "tiny.onnx")
    # When the run's parameters are checked at start
    pre = REGISTRY.ensure_ready("onnx", params=params_for(path))
    # Then its version names the model and its lineage the file
    assert "tiny-" in pre.version and pre.version.startswith("onnxruntime-")
    assert str(path.resolve()) in getattr(pre, "model_files", [])


def test_cuda_falls_back_to_cpu_when_onnxruntime_has_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an onnxruntime without the CUDA provider
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    # When device cuda, auto or cpu is asked for
    # Then CPU is used
    assert providers_for("cuda") == ["CPUExecutionProvider"]
    assert providers_for("auto") == ["CPUExecutionProvider"]
    # And with the CUDA provider present, cuda:1 picks that device first
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert providers_for("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert providers_for("cpu") == ["CPUExecutionProvider"]
