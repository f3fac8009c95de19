"""Benchmark helper for ``annoflow bench totask-inference``: the built-in detector batched vs one at a time.

Both paths run the same detector on the same images with the same parameters; only the
batching differs. A batch runs one image per thread across the cores; one image alone
uses OpenCV's own threads inside the detection. So the ratio measures what batching buys
over the best single-image path on this machine, and it grows with the core count.
"""

from __future__ import annotations

import os
import time
from typing import Any

import cv2
import numpy as np

from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import InferenceItem
from common.totask.preprocessors.haar import HaarFaceDetector

__all__ = ["bench_inference", "bench_onnx_inference", "sample_image"]


def sample_image() -> tuple[bytes, str]:
    """PNG bytes of a test image and where it came from.

    scikit-image's bundled astronaut photo when installed (a real face, shipped in the
    package, no download); otherwise a synthetic 512x512 texture of the same size.
    """
    try:
        from skimage import data as skdata  # optional: a dev dependency

        rgb = skdata.astronaut()  # type: ignore[no-untyped-call]
        source = "skimage.data.astronaut"
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    except Exception:  # not installed, or its data missing: timing does not need a face
        rng = np.random.default_rng(0)
        img = cv2.GaussianBlur(rng.integers(0, 256, (512, 512), dtype=np.uint8), (9, 9), 3)
        source = "synthetic-512x512"
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("OpenCV could not encode the sample image as PNG")
    return buf.tobytes(), source


def bench_inference(images: int = 64, batch_size: int = 16, image: bytes | None = None) -> dict[str, Any]:
    """Time the Haar face detector batched and one image at a time.

    Returns:
        ``batched_images_per_s``, ``per_item_images_per_s``, ``ratio`` and the setup
        (images, batch_size, threads, cpu_count, image_source, faces_per_image).
    """
    data, source = (image, "given") if image is not None else sample_image()
    detector = HaarFaceDetector()
    detector.load()
    params = PreProcessorParams.model_validate({"model_config": {"batch_size": batch_size}})
    items = [InferenceItem(str(i), f"bench://{i}", data) for i in range(images)]
    faces = len(detector.predict(items[:1], params)[0])  # warm-up: caches, thread pool
    detector.predict(items[: min(batch_size, images)], params)

    t0 = time.perf_counter()
    for item in items:
        detector.predict([item], params)
    per_item = images / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for start in range(0, images, batch_size):
        detector.predict(items[start : start + batch_size], params)
    batched = images / (time.perf_counter() - t0)
    return {
        "batched_images_per_s": round(batched, 2),
        "per_item_images_per_s": round(per_item, 2),
        "ratio": round(batched / per_item, 3),
        "images": images,
        "batch_size": batch_size,
        "threads": detector.threads,
        "cpu_count": os.cpu_count(),
        "image_source": source,
        "faces_per_image": faces,
    }


def bench_onnx_inference(images: int = 64, batch_size: int = 16, size: int = 320) -> dict[str, Any]:
    """Time the ``onnx`` pre-processor on a small detector built now, batched and one image at a time.

    The batched path decodes and letterboxes the images on a thread per core and runs the
    model once over its dynamic batch axis; one image alone runs the model with
    onnxruntime's own threads. Same images, same parameters; only the batching differs.

    Returns:
        ``batched_images_per_s``, ``per_item_images_per_s``, ``ratio`` and the setup.

    Raises:
        ModuleNotFoundError: the ``onnx`` package (dev extra) that builds the detector is missing.
    """
    import tempfile
    from pathlib import Path

    from bench.onnx_detector import CLASS_NAMES, build_detector
    from common.totask.preprocessors.onnx import OnnxDetector

    data, source = sample_image()
    with tempfile.TemporaryDirectory(prefix="annoflow-bench-onnx-") as tmp:
        path = build_detector(Path(tmp) / "detector.onnx", size)
        detector = OnnxDetector()
        detector.load()
        params = PreProcessorParams.model_validate(
            {
                "model_path": str(path),
                "class_names": CLASS_NAMES,
                "model_config": {"batch_size": batch_size, "device": "cpu"},
            }
        )
        items = [InferenceItem(str(i), f"bench://{i}", data) for i in range(images)]
        detector.predict(items[:1], params)  # warm-up: session, thread pools
        detector.predict(items[: min(batch_size, images)], params)

        t0 = time.perf_counter()
        for item in items:
            detector.predict([item], params)
        per_item = images / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        for start in range(0, images, batch_size):
            detector.predict(items[start : start + batch_size], params)
        batched = images / (time.perf_counter() - t0)
    return {
        "model": "onnx",
        "batched_images_per_s": round(batched, 2),
        "per_item_images_per_s": round(per_item, 2),
        "ratio": round(batched / per_item, 3),
        "images": images,
        "batch_size": batch_size,
        "input_size": size,
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "image_source": source,
    }
