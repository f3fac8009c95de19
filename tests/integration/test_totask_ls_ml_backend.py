"""The remote pre-processor against a real Label Studio ML backend (``label-studio-ml``) on loopback.

The backend is made as its docs say, ``label-studio-ml init DIR --script
bright_square.py:BrightSquare``, and started as ``label-studio-ml start DIR`` does
(its ``_wsgi.py``, here with this interpreter and on a free port). Its model,
``ls_ml_backend/bright_square.py``, finds the bright square Pillow draws into each
test image, which a local server hands out by URL.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from common.enums import Role
from common.settings import Settings
from common.store import DataFile, DataUnit, Store
from common.totask.objects import AnnotationObject
from common.totask.params import PreProcessorParams
from common.totask.preprocessors import InferenceItem, RemotePreProcessor
from common.workflow import load_workflow
from producer.totask.action import ToTaskAction, ToTaskOptions
from tests.conftest import FIXTURES
from tests.integration.test_totask_http import LocalServer, serve
from tests.packages import require_module
from tests.servers import free_port, wait_for_http

pytestmark = pytest.mark.integration
MODEL = Path(__file__).resolve().parent / "ls_ml_backend" / "bright_square.py"
BOT = "bot@annoflow.test"
# title -> (image size, the bright square's box (left, top, right, bottom) or None, its grey level)
IMAGES: dict[str, tuple[tuple[int, int], tuple[int, int, int, int] | None, int]] = {
    "wide.png": ((400, 200), (40, 50, 140, 100), 230),
    "tall.png": ((120, 300), (10, 200, 70, 290), 255),
    "dark.png": ((64, 64), None, 0),
}


def _png(size: tuple[int, int], box: tuple[int, int, int, int] | None, grey: int) -> bytes:
    img = Image.new("L", size, 20)
    if box is not None:
        ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=grey)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def images() -> Iterator[LocalServer]:
    png = {"Content-Type": "image/png"}
    routes = {f"/img/{name}": (lambda h, n, b=_png(*spec): (200, b, png)) for name, spec in IMAGES.items()}
    yield from serve(routes)  # type: ignore[arg-type]


@contextmanager
def _backend(root: Path, port: int) -> Iterator[str]:
    """``label-studio-ml start`` of the backend made in ``root``, on ``port``; its base URL."""
    cmd = [sys.executable, str(root / "backend" / "_wsgi.py"), "--host", "127.0.0.1", "-p", str(port)]
    cmd += ["--model-dir", str(root / "models"), "--with", f"cache_dir={root}"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(proc, f"{url}/health", 30, "label-studio-ml backend")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the backend made by ``label-studio-ml init`` from ``bright_square.py``."""
    require_module("label_studio_ml", "label-studio-ml")
    root = tmp_path_factory.mktemp("ls-ml")
    init = [sys.executable, "-m", "label_studio_ml.server", "init", "backend", "--root-dir", str(root)]
    subprocess.run([*init, "--script", f"{MODEL}:BrightSquare"], check=True, capture_output=True, timeout=60)
    return root


@pytest.fixture(scope="module")
def backend(made: Path) -> Iterator[str]:
    """The ``BrightSquare`` backend running on 127.0.0.1; its base URL."""
    with _backend(made, free_port()) as url:
        yield url


def test_a_totask_run_writes_the_backends_predictions_to_the_label_rows(
    backend: str, images: LocalServer, tmp_path: Path
) -> None:
    # Given an embedded project with three images served by URL (two with a bright square, one dark)
    home = tmp_path / "home"
    store = Store.open(f"sqlite:///{tmp_path / 'annoflow.db'}")
    project = store.create_project("squares", load_workflow(FIXTURES / "apples.yaml"))
    units = {
        name: DataUnit(
            data_hash=str(uuid.uuid4()),
            title=name,
            meta={"width": size[0], "height": size[1]},
            files={"image": DataFile(url=f"{images.url}/img/{name}", is_primary=True)},
        )
        for name, (size, _, _) in IMAGES.items()
    }
    store.add_data_units(project.id, store.dataset(project.id, "squares"), list(units.values()))
    store.set_role(project.id, BOT, Role.ANNOTATOR)

    # When a ToTask inference run names the backend by URL, two images per request
    params = {
        "name": "Bright_Squares",
        "project": "squares",
        "agent": BOT,
        "task_filters": {"status": "pending"},
        "method": "inference",
        "pre_processor": backend,
        "pre_processor_params": {"confidence_threshold": 0.5, "model_config": {"batch_size": 2}},
    }
    options = ToTaskOptions(workers=1, ready_timeout=10, stall_timeout=60)
    result = ToTaskAction(params, store=store, settings=Settings(home=home), options=options).start()

    # Then every task succeeds
    assert result["status"] == "SUCCEEDED", result["message"]
    assert {k: result["metrics"][k] for k in ("total", "success", "failed")} == {"total": 3, "success": 3, "failed": 0}
    # And each square arrives in its label row in pixels, scored by its brightness, with the model's version
    for name, (_, box, grey) in IMAGES.items():
        objects = store.get_label_row(project.id, units[name].data_hash).objects
        if box is None:
            assert objects == []
            continue
        (square,) = objects
        left, top, right, bottom = box
        want = {"x": left, "y": top, "width": right - left, "height": bottom - top}
        assert square["coordinates"] == pytest.approx(want)
        assert square["score"] == round(grey / 255, 4)
        assert square["properties"]["label"] == "square"
        prov = square["provenance"]
        assert prov["pre_processor"] == backend and prov["pre_processor_version"] == "bright-square-1"
        assert prov["source"] == f"{images.url}/img/{name}" and prov["run_id"] == result["run_id"]


def test_a_restarted_backend_is_set_up_again(made: Path, images: LocalServer) -> None:
    # Given the pre-processor set up against a backend that answered one prediction
    port = free_port()
    item = InferenceItem("t-1", f"{images.url}/img/wide.png", None, 400, 200)
    params = PreProcessorParams.model_validate({"model_config": {"batch_size": 1}})
    pre = RemotePreProcessor("ls", f"http://127.0.0.1:{port}")
    with _backend(made, port):
        assert pre.health()
        assert len(pre.predict([item], params)[0]) == 1 and pre.version == "bright-square-1"
    # When the backend restarts, having lost the model /setup loaded, and is asked again
    with _backend(made, port):
        (pred,) = pre.predict([item], params)
    # Then the pre-processor set it up again and got the square
    (square,) = pred
    assert isinstance(square, AnnotationObject)
    assert square.coordinates == {"x": 40.0, "y": 50.0, "width": 100.0, "height": 50.0}
    pre.close()
