"""ToTask over real HTTP: a local file server (good, broken, 404, flaky, huge, deep files) and a
local fake remote pre-processor (Label Studio ML backend style), both on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from common.errors import InvalidInputError, NotFoundError, TransientError
from common.totask.download import DownloadSettings, Fetcher
from common.totask.preprocessors import PreProcessorRegistry
from common.totask.strategies import FileStrategy, InferenceStrategy
from tests.unit.totask.test_totask_strategies import RUN, make_spec

pytestmark = pytest.mark.integration

Route = Callable[["Handler", int], tuple[int, bytes, dict[str, str]]]
NATIVE = json.dumps(
    {
        "objects": [
            {
                "id": "obj_001",
                "class_id": 1,
                "type": "bbox",
                "coordinates": {"x": 100, "y": 150, "width": 200, "height": 180},
                "properties": {"confidence": 0.95, "label": "person"},
            }
        ]
    }
).encode()
JSON = {"Content-Type": "application/json"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the pooled client reuses connections
    wbufsize = 65536  # headers and body in one send: unbuffered writes meet delayed ACKs (40 ms each)
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _serve(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits[path] += 1
        route = self.server.routes.get(path) or self.server.routes.get(path.rsplit("/", 1)[0] + "/*")
        status, body, headers = route(self, self.server.hits[path]) if route else (404, b"not found", {})
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Connection" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if headers.get("Connection") == "close":
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.hits: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def serve(routes: dict[str, Route]) -> Iterator[LocalServer]:
    srv = LocalServer(routes)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _slow(h: Handler, n: int) -> tuple[int, bytes, dict[str, str]]:
    time.sleep(0.6)
    return 200, NATIVE, JSON


FILES: dict[str, Route] = {
    "/good/*": lambda h, n: (200, NATIVE, JSON),
    "/broken.json": lambda h, n: (200, b'{"objects": [{"id": ', JSON),
    "/flaky.json": lambda h, n: (500, b"oops", {}) if n == 1 else (200, NATIVE, JSON),
    "/down.json": lambda h, n: (503, b"busy", {}),
    "/forbidden.json": lambda h, n: (403, b"no", {}),
    "/big.json": lambda h, n: (200, b" " * 20_000 + b"{}", JSON),
    "/big-unsized.json": lambda h, n: (200, b" " * 20_000 + b"{}", {"Connection": "close"}),
    "/deep.json": lambda h, n: (200, b'{"objects": ' + b"[" * 200 + b"]" * 200 + b"}", JSON),
    "/slow.json": _slow,
    "/coco.json": lambda h, n: (
        200,
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "img.png", "width": 640, "height": 480}],
                "categories": [{"id": 3, "name": "dog"}],
                "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]}],
            }
        ).encode(),
        JSON,
    ),
}


@pytest.fixture(scope="module")
def files() -> Iterator[LocalServer]:
    yield from serve(FILES)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = Fetcher(DownloadSettings(max_bytes=10_000, retries=2, backoff=0.01, read_timeout=0.3, concurrency=8))
    yield f
    f.close()


PARAMS = {"method": "file", "target_specification_name": "annotations"}


def test_file_strategy_over_http(files: LocalServer, fetcher: Fetcher) -> None:
    # Given tasks whose annotation files are good, broken, missing, flaky, down, forbidden, huge, deep, slow, COCO
    names = [
        "good/1.json",
        "broken.json",
        "missing.json",
        "flaky.json",
        "down.json",
        "forbidden.json",
        "big.json",
        "big-unsized.json",
        "deep.json",
        "slow.json",
        "coco.json",
    ]
    specs = [make_spec({"annotations": f"{files.url}/{n}"}, PARAMS, meta={"width": 640, "height": 480}) for n in names]
    # When the batch runs through the file strategy (downloads concurrent, retries with backoff)
    results = dict(zip(names, FileStrategy(fetcher).run(specs), strict=True))
    # Then good, flaky (retried after a 500) and COCO succeed with provenance
    for ok in ("good/1.json", "flaky.json", "coco.json"):
        assert results[ok].success, results[ok].error
    good = results["good/1.json"].labels
    assert good is not None and good.objects[0]["score"] == 0.95
    assert good.objects[0]["provenance"] == {"run_id": RUN, "method": "file", "source": f"{files.url}/good/1.json"}
    coco = results["coco.json"].labels
    assert coco is not None and coco.objects[0]["properties"]["label"] == "dog"
    # And each failure has its own reason; the run would go on
    errors = {n: r.error or "" for n, r in results.items() if not r.success}
    assert errors["broken.json"].startswith("Invalid JSON format in annotation file")
    assert (
        errors["missing.json"].startswith("Failed to download JSON from URL") and "HTTP 404" in errors["missing.json"]
    )
    assert "HTTP 503 after 3 attempts" in errors["down.json"]
    assert "HTTP 403" in errors["forbidden.json"]
    assert "20002 bytes is over the 10000 bytes cap" in errors["big.json"]  # from Content-Length, unread
    assert "the body is over the 10000 bytes cap" in errors["big-unsized.json"]  # counted while streaming
    assert "nested deeper than 64 levels" in errors["deep.json"]
    assert "timed out" in errors["slow.json"]
    # And 5xx and timeouts were retried, 4xx were not
    assert files.hits["/flaky.json"] == 2 and files.hits["/down.json"] == 3 and files.hits["/slow.json"] == 3
    assert files.hits["/missing.json"] == 1 and files.hits["/forbidden.json"] == 1


def test_fetcher_errors_by_kind(files: LocalServer, fetcher: Fetcher) -> None:
    # Given the same server
    # When fetched directly
    # Then each error is of the branch that tells the caller what to do
    with pytest.raises(NotFoundError):
        fetcher.fetch(f"{files.url}/missing.json")
    with pytest.raises(TransientError):
        fetcher.fetch(f"{files.url}/down.json")
    with pytest.raises(InvalidInputError, match="scheme 'ftp' is not supported"):
        fetcher.fetch("ftp://example.invalid/a.json")
    assert fetcher.fetch_json(f"{files.url}/good/2.json")["objects"][0]["id"] == "obj_001"


def test_concurrent_batch_download(files: LocalServer, fetcher: Fetcher) -> None:
    # Given 40 distinct good files
    urls = [f"{files.url}/good/{i}.json" for i in range(100, 140)]
    # When fetched as one batch
    out = fetcher.fetch_json_many(urls)
    # Then every one arrives, in order
    assert all(isinstance(o, dict) and o["objects"][0]["id"] == "obj_001" for o in out)
    assert sum(files.hits[f"/good/{i}.json"] for i in range(100, 140)) == 40


class FakeModel:
    """State of the fake remote pre-processor."""

    def __init__(self, ready_after: int | None, delay: float = 0.0) -> None:
        self.ready_after = ready_after
        self.delay = delay
        self.requests: list[dict[str, Any]] = []

    def health(self, h: Handler, n: int) -> tuple[int, bytes, dict[str, str]]:
        up = self.ready_after is not None and n > self.ready_after
        body = {"status": "UP", "model_version": "fake-yolo-1"} if up else {"status": "LOADING"}
        return 200, json.dumps(body).encode(), JSON

    def predict(self, h: Handler, n: int) -> tuple[int, bytes, dict[str, str]]:
        req = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        self.requests.append(req)
        time.sleep(self.delay)
        region = {"type": "rectanglelabels", "original_width": 1000, "original_height": 500}

        def rect(ident: str, x: float, label: str, score: float) -> dict[str, Any]:
            return {
                **region,
                "id": ident,
                "score": score,
                "value": {"x": x, "y": 10, "width": 20, "height": 20, "rectanglelabels": [label]},
            }

        results = [
            {
                "model_version": "fake-yolo-1",
                "result": [
                    rect("a", 10, "car", 0.95),
                    rect("b", 11, "car", 0.9),
                    rect("c", 50, "car", 0.3),
                    rect("d", 70, "person", 0.99),
                ],
            }
            for _ in req["tasks"]
        ]
        return 200, json.dumps({"results": results}).encode(), JSON


@pytest.fixture
def model() -> Iterator[tuple[FakeModel, LocalServer]]:
    fake = FakeModel(ready_after=2)
    yield from ((fake, s) for s in serve({"/health": fake.health, "/predict": fake.predict}))


def test_remote_pre_processor_end_to_end(model: tuple[FakeModel, LocalServer], fetcher: Fetcher) -> None:
    # Given a model server that reports LOADING twice before UP, registered by name
    fake, srv = model
    reg = PreProcessorRegistry()
    reg.register_remote("yolo", srv.url)
    # When the run checks readiness
    pre = reg.ensure_ready("yolo", timeout=5)
    # Then it waited for UP and learnt the model version
    assert srv.hits["/health"] == 3 and pre.version == "fake-yolo-1"
    # When five tasks run with thresholds, NMS, a class filter and batch_size 2
    pp = {"confidence_threshold": 0.5, "nms_threshold": 0.5, "class_filter": ["car"], "model_config": {"batch_size": 2}}
    params = {"method": "inference", "pre_processor": "yolo", "pre_processor_params": pp}
    specs = [make_spec({"image": f"http://images/{i}.jpg"}, params, kind="totask.inference") for i in range(5)]
    results = InferenceStrategy(fetcher, reg).run(specs)
    # Then the server got image URLs (not bytes) in batches of 2, 2, 1 with the parameters
    assert [len(r["tasks"]) for r in fake.requests] == [2, 2, 1]
    assert fake.requests[0]["tasks"][0]["data"]["image"] == "http://images/0.jpg"
    assert fake.requests[0]["params"]["model_config"]["batch_size"] == 2
    # And each task keeps only the best of the overlapping confident cars, in pixels, with provenance
    for r in results:
        assert r.success and r.labels is not None
        (car,) = r.labels.objects
        assert car["coordinates"] == {"x": 100.0, "y": 50.0, "width": 200.0, "height": 100.0} and car["score"] == 0.95
        assert (
            car["provenance"]["pre_processor"] == "yolo" and car["provenance"]["pre_processor_version"] == "fake-yolo-1"
        )


def test_remote_not_ready_and_timeout(fetcher: Fetcher) -> None:
    # Given a server that never becomes ready, and one that is ready but slow
    never, slow = FakeModel(ready_after=None), FakeModel(ready_after=0, delay=1.0)
    for fake_srv in serve({"/health": never.health, "/predict": never.predict}):
        reg = PreProcessorRegistry()
        reg.register_remote("never", fake_srv.url)
        # When readiness is checked with a short timeout
        # Then the run stops with the seed's message
        with pytest.raises(TransientError, match="Pre-processor not active: 'never'"):
            reg.ensure_ready("never", timeout=0.5)
    for slow_srv in serve({"/health": slow.health, "/predict": slow.predict}):
        params = {
            "method": "inference",
            "pre_processor": slow_srv.url,
            "pre_processor_params": {"inference_timeout": 0.3},
        }
        # When a task runs against the slow one (named by URL)
        (r,) = InferenceStrategy(fetcher, PreProcessorRegistry()).run(
            [make_spec({"image": "http://i/1.jpg"}, params, kind="totask.inference")]
        )
        # Then that task fails with the inference timeout
        assert not r.success and r.error is not None and r.error.startswith("Pre-processor inference timeout")
