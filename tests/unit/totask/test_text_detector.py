"""The built-in text pre-processor: RapidOCR's bundled PP-OCRv4 models read text drawn by Pillow."""

from __future__ import annotations

import io
from typing import Any

import pytest

from common.errors import InvalidInputError
from common.totask.params import PreProcessorParams
from common.totask.preprocessors import REGISTRY, TextDetector
from tests.packages import require_module
from tests.unit.totask.helpers import items


@pytest.fixture(scope="module")
def detector() -> TextDetector:
    require_module("rapidocr_onnxruntime", "rapidocr-onnxruntime")
    d = TextDetector()
    d.load()
    return d


def _drawn(lines: list[tuple[int, int, str]], size: tuple[int, int] = (640, 260)) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=48)
    for x, y, text in lines:
        draw.text((x, y), text, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _norm(text: str) -> str:
    return "".join(text.split()).lower()


def test_text_drawn_by_pillow_is_found_and_read(detector: TextDetector) -> None:
    # Given an image with two lines of text drawn by Pillow
    image = _drawn([(40, 40, "HELLO WORLD"), (40, 150, "annoflow 2024")])
    # When the text pre-processor predicts on it
    (pred,) = detector.predict(items(image), PreProcessorParams())
    # Then the lines come back as polygons around where they were drawn, with what they say
    # (the detector may split a line at a wide gap: read them in order)
    ordered = sorted(pred, key=lambda o: (round(o.coordinates["points"][0][1] / 50), o.coordinates["points"][0][0]))
    assert "".join(_norm(o.properties["text"]) for o in ordered) == "helloworldannoflow2024"
    hello = next(o for o in pred if _norm(o.properties["text"]) == "helloworld")
    assert hello.type == "polygon" and len(hello.coordinates["points"]) == 4
    xs = [p[0] for p in hello.coordinates["points"]]
    ys = [p[1] for p in hello.coordinates["points"]]
    assert 25 <= min(xs) <= 60 and 30 <= min(ys) <= 70 and max(ys) < 130
    assert hello.properties["label"] == "text" and hello.score is not None and hello.score > 0.8


def test_text_regions_as_boxes_and_a_blank_image(detector: TextDetector) -> None:
    # Given an image with one word and a blank image, asked for bbox regions
    params = PreProcessorParams.model_validate({"text_shape": "bbox", "model_config": {"batch_size": 2}})
    # When predicted as one batch
    word, blank = detector.predict(items(_drawn([(100, 100, "Pillow")]), _drawn([])), params)
    # Then the word is one bbox and the blank image has nothing
    assert [(o.type, _norm(o.properties["text"])) for o in word] == [("bbox", "pillow")]
    assert word[0].coordinates["width"] > 50
    assert blank == []


def test_the_models_come_from_the_wheel_and_bad_parameters_fail_at_start(detector: TextDetector) -> None:
    # Given the registry's text pre-processor
    pre = REGISTRY.ensure_ready("text", timeout=5)
    # Then its model files are the wheel's PP-OCRv4 ONNX models
    assert any("PP-OCRv4_det" in f for f in getattr(pre, "model_files", []))
    # And an unknown text shape is refused when the run's parameters are checked
    with pytest.raises(InvalidInputError, match="text_shape"):
        REGISTRY.ensure_ready("text", params=PreProcessorParams.model_validate({"text_shape": "circle"}))


def test_bytes_that_are_no_image_fail_their_task(detector: TextDetector) -> None:
    # Given bytes that are not an image
    # When predicted
    # Then a clear input error names the image
    bad: Any = items(b"not an image")
    with pytest.raises(InvalidInputError, match=r"mem://image-0\.png"):
        detector.predict(bad, PreProcessorParams())
