"""Shared pieces of the ToTask run tests: a local file/image server, a fake model server, a Redis DB.

Everything listens on 127.0.0.1 with a free port; the Redis databases 10-12 are the
ToTask tests' own (flushed before and after).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import cv2
import numpy as np
import redis
from skimage import data as skdata

from tests.integration.test_totask_http import JSON, Handler, Route

REDIS_TOTASK_DB = 10
REDIS_AGENTS_DB = 11
SIZE = {"width": 640, "height": 480}


def native(*boxes: tuple[float, float, float, float], ident: str = "obj") -> bytes:
    """A native annotation file with one bbox object per box."""
    objects = [
        {
            "id": f"{ident}_{i}",
            "class_id": 1,
            "type": "bbox",
            "coordinates": {"x": x, "y": y, "width": w, "height": h},
            "properties": {"confidence": 0.95, "label": "person"},
        }
        for i, (x, y, w, h) in enumerate(boxes)
    ]
    return json.dumps({"objects": objects}).encode()


def png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


ASTRONAUT = png(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))  # type: ignore[no-untyped-call]
BLANK = png(np.full((200, 300), 128, dtype=np.uint8))
PNG = {"Content-Type": "image/png"}

FILES: dict[str, Route] = {
    "/ann/*": lambda h, n: (200, native((100, 150, 200, 180)), JSON),
    "/broken.json": lambda h, n: (200, b'{"objects": [{"id": ', JSON),
    "/oob.json": lambda h, n: (200, native((600, 10, 100, 50)), JSON),
    "/img/astronaut.png": lambda h, n: (200, ASTRONAUT, PNG),
    "/img/astronaut2.png": lambda h, n: (200, ASTRONAUT, PNG),
    "/img/blank.png": lambda h, n: (200, BLANK, PNG),
    "/img/not-an-image.png": lambda h, n: (200, b"these are not pixels", PNG),
}


class FakeModel:
    """A model server: one car per image, scored by the image name; it can go down after N predictions.

    ``sure-*`` images score ``sure``, others ``unsure``; after ``down_after`` predictions
    ``/health`` answers LOADING (the model was unloaded mid-run).
    """

    def __init__(self, sure: float = 0.95, unsure: float = 0.6, down_after: int | None = None, delay: float = 0.0):
        self.sure, self.unsure, self.down_after, self.delay = sure, unsure, down_after, delay
        self.predicted = 0
        self.lock = threading.Lock()

    def health(self, h: Handler, n: int) -> tuple[int, bytes, dict[str, str]]:
        down = self.down_after is not None and self.predicted >= self.down_after
        return 200, json.dumps({"status": "LOADING" if down else "UP", "model_version": "fake-1"}).encode(), JSON

    def predict(self, h: Handler, n: int) -> tuple[int, bytes, dict[str, str]]:
        req = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        time.sleep(self.delay)
        results = []
        for task in req["tasks"]:
            score = self.sure if "/sure-" in task["data"]["image"] else self.unsure
            box = {"x": 10, "y": 10, "width": 50, "height": 40}
            results.append(
                {"objects": [{"id": "car", "class_id": 1, "type": "bbox", "coordinates": box, "score": score}]}
            )
        with self.lock:
            self.predicted += len(req["tasks"])
        return 200, json.dumps({"results": results}).encode(), JSON

    @property
    def routes(self) -> dict[str, Route]:
        return {"/health": self.health, "/predict": self.predict}


def fresh_redis(db: int) -> str:
    """Flush the database and return its URL."""
    redis.Redis(db=db).flushdb()
    return f"redis://127.0.0.1:6379/{db}"


def objects_of(row: Any) -> list[dict[str, Any]]:
    """A label row's objects (typed for the tests)."""
    return list(row.objects)
