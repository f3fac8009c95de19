"""The strategies on TaskSpecs: file:// inputs under a root, plugins, batching, timeouts, readiness."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from common.errors import NotFoundError, TransientError
from common.models import LabelPayload, TaskSpec, WorkKind
from common.store.records import DataFile
from common.totask.download import DownloadSettings, Fetcher
from common.totask.params import PreProcessorParams
from common.totask.preprocessors import InferenceItem, Prediction, PreProcessorRegistry
from common.totask.preprocessors.haar import HaarFaceDetector
from common.totask.strategies import FileStrategy, InferenceStrategy, run_batch

# scikit-image ships this photo inside the package: no download.
astronaut_rgb: Callable[[], np.ndarray] = skdata.astronaut

RUN = "run-0001-abcdef"


def make_spec(
    files: dict[str, str],
    params: dict[str, Any],
    *,
    title: str = "img.png",
    meta: dict[str, Any] | None = None,
    labels: LabelPayload | None = None,
    kind: WorkKind = "totask.file",
    pathways: dict[str, uuid.UUID] | None = None,
) -> TaskSpec:
    """A task spec as the producer would publish it for a ToTask run."""
    at = datetime(2025, 1, 2, tzinfo=UTC)
    return TaskSpec(
        uuid=uuid.uuid4(),
        data_hash=uuid.uuid4(),
        data_title=title,
        status="NEW",
        created_at=at,
        updated_at=at,
        project_uuid=str(uuid.uuid4()),
        project_name="p",
        stage_uuid=uuid.uuid4(),
        stage_title="Pre-label",
        kind=kind,
        lease_token="lease-1",
        files={k: DataFile(url=v, original_name=Path(v).name, is_primary=(k == "image")) for k, v in files.items()},
        meta=meta or {},
        labels=labels,
        run_id=RUN,
        params=params,
        pathways=pathways or {},
    )


@pytest.fixture
def fetcher(tmp_path: Path) -> Iterator[Fetcher]:
    f = Fetcher(DownloadSettings(allowed_roots=[tmp_path], retries=0))
    yield f
    f.close()


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut_rgb(), cv2.COLOR_RGB2BGR))
    return path


FILE_PARAMS = {"method": "file", "target_specification_name": "annotations"}


def test_file_strategy_applies_files_and_fails_bad_ones_alone(tmp_path: Path, fetcher: Fetcher) -> None:
    # Given three tasks: a good native file, a broken one, one without the specification
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "objects": [
                    {
                        "id": "obj_001",
                        "class_id": 1,
                        "type": "bbox",
                        "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4},
                    }
                ]
            }
        )
    )
    (tmp_path / "bad.json").write_text('{"objects": [')
    existing = LabelPayload(version=3, objects=[{"id": "human_1", "class_id": 9, "type": "classification"}])
    specs = [
        make_spec({"image": "file:///x.png", "annotations": good.as_uri()}, FILE_PARAMS, labels=existing),
        make_spec({"annotations": str(tmp_path / "bad.json")}, FILE_PARAMS),
        make_spec({"image": "file:///x.png"}, FILE_PARAMS),
    ]
    # When the batch runs
    ok, broken, missing = FileStrategy(fetcher).run(specs)
    # Then the good task carries its objects with provenance, kept beside the human's
    assert ok.success and ok.labels is not None and ok.labels.version == 3
    assert [o["id"] for o in ok.labels.objects] == ["human_1", "obj_001"]
    assert ok.labels.objects[1]["provenance"] == {"run_id": RUN, "method": "file", "source": good.as_uri()}
    assert ok.lease_token == "lease-1" and ok.pathway is None
    # And the others fail with the seed's messages, each alone
    assert not broken.success and broken.error is not None
    assert broken.error.startswith("Invalid JSON format in annotation file")
    assert (
        not missing.success and missing.error is not None and missing.error.startswith("Target specification not found")
    )


def test_local_files_outside_roots_are_refused(tmp_path: Path, fetcher: Fetcher) -> None:
    # Given a file:// URL and a plain path outside the allowed root
    specs = [
        make_spec({"annotations": "file:///etc/hostname"}, FILE_PARAMS),
        make_spec({"annotations": "/etc/hostname"}, FILE_PARAMS),
    ]
    # When the batch runs
    results = FileStrategy(fetcher).run(specs)
    # Then both fail, saying why and how to fix it
    for r in results:
        assert not r.success and r.error is not None
        assert "outside the allowed root folders" in r.error and "add its folder" in r.error


def test_file_out_of_bounds_fails_the_task(tmp_path: Path, fetcher: Fetcher) -> None:
    # Given a 100x100 data unit whose file has a box at x=90, 20 wide
    f = tmp_path / "a.json"
    f.write_text(
        json.dumps(
            {
                "objects": [
                    {
                        "id": "o",
                        "class_id": 1,
                        "type": "bbox",
                        "coordinates": {"x": 90, "y": 0, "width": 20, "height": 5},
                    }
                ]
            }
        )
    )
    spec = make_spec({"annotations": f.as_uri()}, FILE_PARAMS, meta={"width": 100, "height": 100})
    # When it runs
    (r,) = FileStrategy(fetcher).run([spec])
    # Then the task fails with the bounds error
    assert not r.success and r.error is not None and r.error.startswith("Coordinates out of bounds")
    # And without meta, the size the file itself declares is checked instead
    g = tmp_path / "b.json"
    g.write_text(
        json.dumps(
            {
                "image": {"width": 50, "height": 50},
                "objects": [{"id": "o", "class_id": 1, "type": "keypoint", "coordinates": {"x": 60, "y": 1}}],
            }
        )
    )
    (r2,) = FileStrategy(fetcher).run([make_spec({"annotations": g.as_uri()}, FILE_PARAMS)])
    assert not r2.success and r2.error is not None and "the image is 50x50" in r2.error


def test_inference_with_the_built_in_detector(tmp_path: Path, fetcher: Fetcher, astronaut: Path) -> None:
    # Given the astronaut photo under the root, a non-image and a class filter that keeps faces
    img = tmp_path / "astronaut.png"
    img.write_bytes(astronaut.read_bytes())
    (tmp_path / "not.png").write_text("text")
    params = {
        "method": "inference",
        "pre_processor": "haar-face",
        "pre_processor_params": {"confidence_threshold": 0.9, "class_filter": [1, 2, 3], "min_object_size": 20},
    }
    specs = [
        make_spec({"image": img.as_uri()}, params, kind="totask.inference", meta={"width": 512, "height": 512}),
        make_spec({"image": (tmp_path / "not.png").as_uri()}, params, kind="totask.inference"),
    ]
    registry = PreProcessorRegistry()
    registry.register("haar-face", HaarFaceDetector)
    # When the batch runs
    ok, bad = InferenceStrategy(fetcher, registry).run(specs)
    # Then the face arrives with full provenance and a score
    assert ok.success and ok.labels is not None
    (face,) = ok.labels.objects
    prov = face["provenance"]
    assert (prov["run_id"], prov["method"], prov["pre_processor"]) == (RUN, "inference", "haar-face")
    assert prov["pre_processor_version"].startswith("opencv-4.") and face["score"] > 0.9
    assert face["id"].startswith(RUN[:8])
    # And the non-image fails alone
    assert not bad.success and bad.error is not None and "Cannot decode image" in bad.error
    # And a class filter without faces drops it
    params["pre_processor_params"]["class_filter"] = [2]  # type: ignore[index]
    (none,) = InferenceStrategy(fetcher, registry).run(
        [make_spec({"image": img.as_uri()}, params, kind="totask.inference")]
    )
    assert none.success and none.labels is not None and none.labels.objects == []


class Recording:
    """A fake plugin: one box per image, scored by its position; records batch sizes and loads."""

    name = "recording"
    version = "1.0"
    needs_bytes = False
    loads = 0

    def __init__(self) -> None:
        self.batches: list[int] = []

    def load(self) -> None:
        Recording.loads += 1

    def health(self) -> bool:
        return True

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        self.batches.append(len(batch))
        return [
            [
                {
                    "id": "b",
                    "class_id": 1,
                    "type": "bbox",
                    "coordinates": {"x": 0, "y": 0, "width": 5, "height": 5},
                    "score": 0.95,
                }
            ]
            for _ in batch
        ]


class Slow(Recording):
    name = "slow"

    def predict(self, batch: Sequence[InferenceItem], params: PreProcessorParams) -> list[Prediction]:
        time.sleep(3)
        return super().predict(batch, params)


class BrokenLoad(Recording):
    name = "broken"

    def load(self) -> None:
        raise RuntimeError("weights file corrupt")


def _registry() -> PreProcessorRegistry:
    reg = PreProcessorRegistry()
    for cls in (Recording, Slow, BrokenLoad):
        reg.register(cls.name, cls)
    return reg


def test_plugin_called_in_batches_of_model_config_batch_size_and_loaded_once(fetcher: Fetcher) -> None:
    # Given seven tasks and batch_size 3
    params = {
        "method": "inference",
        "pre_processor": "recording",
        "pre_processor_params": {"model_config": {"batch_size": 3}},
    }
    specs = [make_spec({"image": f"http://img/{i}.png"}, params, kind="totask.inference") for i in range(7)]
    reg = _registry()
    before = Recording.loads
    # When two batches of messages run in this process
    strategy = InferenceStrategy(fetcher, reg)
    results = strategy.run(specs) + strategy.run(specs[:2])
    # Then predict saw 3, 3, 1 then 2, and the plugin loaded once
    plugin = reg.get("recording")
    assert isinstance(plugin, Recording) and plugin.batches == [3, 3, 1, 2]
    assert Recording.loads == before + 1 and all(r.success for r in results)


def test_inference_timeout_fails_the_tasks() -> None:
    # Given a plugin slower than the inference timeout
    params = {"method": "inference", "pre_processor": "slow", "pre_processor_params": {"inference_timeout": 0.2}}
    spec = make_spec({"image": "http://img/1.png"}, params, kind="totask.inference")
    # When it runs
    (r,) = InferenceStrategy(Fetcher(), _registry()).run([spec])
    # Then the task fails with the seed's message
    assert not r.success and r.error is not None and r.error.startswith("Pre-processor inference timeout")


def test_ensure_ready_loads_plugins_and_refuses_broken_or_unknown() -> None:
    # Given a registry with a working, a broken and no such plugin
    reg = _registry()
    # When readiness is checked
    ready = reg.ensure_ready("recording", timeout=1)
    # Then the working one is loaded and active, the broken one is "not active", the unknown one not found
    assert ready.health()
    with pytest.raises(TransientError, match="Pre-processor not active: loading 'broken' failed"):
        reg.ensure_ready("broken", timeout=1)
    with pytest.raises(NotFoundError, match="Pre-processor not found: 'nope'"):
        reg.ensure_ready("nope", timeout=1)


def test_route_by_confidence_in_an_agent_stage(fetcher: Fetcher) -> None:
    # Given an agent-stage spec with pathways and a confidence route at 0.9
    done, review = uuid.uuid4(), uuid.uuid4()
    params = {
        "method": "inference",
        "pre_processor": "recording",
        "route": {"threshold": 0.9, "high": "complete", "low": "review"},
    }
    spec = make_spec({"image": "http://img/1.png"}, params, kind="agent", pathways={"complete": done, "review": review})
    # When it runs with the fake model (score 0.95), then with a stricter threshold
    (sure,) = run_batch([spec], inference=InferenceStrategy(fetcher, _registry()))
    params["route"]["threshold"] = 0.99  # type: ignore[index]
    (unsure,) = run_batch(
        [spec.model_copy(update={"run_id": "other"})], inference=InferenceStrategy(fetcher, _registry())
    )
    # Then the sure task goes to complete, the unsure one to review
    assert sure.pathway == done and unsure.pathway == review


def test_fork_gets_its_own_instance() -> None:
    # Given a plugin loaded in this process
    reg = _registry()
    first = reg.get("recording")
    # When the registry sees another process id (as after a fork)
    reg._pid = -1
    second = reg.get("recording")
    # Then it loads a fresh instance instead of using the parent's
    assert first is not second and isinstance(second, Recording)
