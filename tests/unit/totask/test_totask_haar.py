"""The built-in Haar face detector on a real photograph (scikit-image's bundled astronaut)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from bench.totask_inference import bench_inference
from common.totask.params import PreProcessorParams
from common.totask.preprocessors import InferenceItem
from common.totask.preprocessors.haar import HaarFaceDetector

# scikit-image ships this photo inside the package: no download.
astronaut_rgb: Callable[[], np.ndarray] = skdata.astronaut


def png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def astronaut_png() -> bytes:
    return png(cv2.cvtColor(astronaut_rgb(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def detector() -> HaarFaceDetector:
    d = HaarFaceDetector()
    d.load()
    return d


def test_detects_the_astronauts_face(detector: HaarFaceDetector, astronaut_png: bytes) -> None:
    # Given the astronaut photo (one face, around x=177 y=67, 93 px wide)
    item = InferenceItem("t1", "mem://astronaut.png", astronaut_png)
    # When the detector predicts
    (pred,) = detector.predict([item], PreProcessorParams())
    # Then one face comes back as a bbox of class 1 with a high score
    (face,) = pred
    assert not isinstance(face, dict)
    c = face.coordinates
    assert face.type == "bbox" and face.class_id == 1 and face.label == "face"
    assert abs(c["x"] - 177) < 15 and abs(c["y"] - 67) < 15 and 70 < c["width"] < 120
    assert face.score is not None and face.score > 0.9
    assert detector.version.startswith("opencv-4.")


def test_batch_gives_the_same_answers_as_one_at_a_time(detector: HaarFaceDetector, astronaut_png: bytes) -> None:
    # Given the photo, its mirror image and a blank image
    mirror = png(cv2.flip(cv2.cvtColor(astronaut_rgb(), cv2.COLOR_RGB2BGR), 1))
    blank = png(np.full((200, 300), 128, dtype=np.uint8))
    items = [InferenceItem(str(i), f"mem://{i}", b) for i, b in enumerate([astronaut_png, mirror, blank])]
    params = PreProcessorParams()
    # When predicted as one batch and one by one
    batched = detector.predict(items, params)
    single = [detector.predict([it], params)[0] for it in items]
    # Then the answers agree: a face, a mirrored face, nothing
    assert batched == single
    assert [len(p) for p in batched] == [1, 1, 0]


def test_min_object_size_skips_small_faces(detector: HaarFaceDetector, astronaut_png: bytes) -> None:
    # Given a minimum size larger than the astronaut's face
    params = PreProcessorParams(min_object_size=150)
    # When predicted
    (pred,) = detector.predict([InferenceItem("t", "mem://a", astronaut_png)], params)
    # Then the detector does not search at that scale at all
    assert pred == []


def test_bench_helper_reports_both_rates() -> None:
    # Given a tiny benchmark on a small image (the real one runs from the CLI)
    small = png(cv2.resize(cv2.cvtColor(astronaut_rgb(), cv2.COLOR_RGB2GRAY), (128, 128)))
    # When run
    out = bench_inference(images=4, batch_size=2, image=small)
    # Then it reports both rates, their ratio and its setup
    assert out["batched_images_per_s"] > 0 and out["per_item_images_per_s"] > 0
    assert out["ratio"] == pytest.approx(out["batched_images_per_s"] / out["per_item_images_per_s"], rel=0.01)
    assert out["images"] == 4 and out["batch_size"] == 2 and out["image_source"] == "given"
