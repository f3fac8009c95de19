"""The ToTask seed's complete examples and its errors, through real worker processes on Redis.

One ``annoflow totask worker`` (2 pool processes, Redis DB 10) serves the module; each
test has its own PostgreSQL schema, a local HTTP server for annotation files and
images, and, where it needs one, a local fake model server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from common.celery_app import PipelineSettings
from common.enums import Action, Role
from common.settings import Settings
from common.store import ActionRequest, DataFile, DataUnit, LabelRow, ProjectRecord, Store
from common.store.totask_runs import list_failures
from common.workflow import load_workflow, parse_workflow
from producer.embedded import EmbeddedOptions, run_embedded
from producer.totask.action import ToTaskAction, ToTaskOptions
from tests.conftest import FIXTURES, _postgres_store
from tests.integration.pipeline_env import ROOT, kill_group
from tests.integration.test_totask_http import LocalServer, serve
from tests.integration.totask_env import FILES, REDIS_AGENTS_DB, REDIS_TOTASK_DB, SIZE, FakeModel, fresh_redis
from tests.servers import require_redis

pytestmark = pytest.mark.integration

BOT = "bot@annoflow.test"
PIPELINE = PipelineSettings(soft_time_limit=20, hard_time_limit=30, visibility_timeout=60)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Redis DB 10 and one ToTask worker process (2 pool processes) consuming both queues."""
    require_redis()
    url = fresh_redis(REDIS_TOTASK_DB)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, "ANNOFLOW_BROKER_URL": url, "PYTHONPATH": str(ROOT), "ANNOFLOW_SOFT_TIME_LIMIT": "20"}
    env.update(ANNOFLOW_HARD_TIME_LIMIT="30", ANNOFLOW_VISIBILITY_TIMEOUT="60")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "totask", "worker", "--concurrency", "2", "--loglevel", "WARNING"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield url
    finally:
        kill_group(proc, signal.SIGKILL)
        redis.Redis(db=REDIS_TOTASK_DB).flushdb()
        print(log.read_text(errors="replace")[-3000:])


@pytest.fixture
def pg_store() -> Iterator[Store]:
    yield from _postgres_store()


@pytest.fixture(scope="module")
def files() -> Iterator[LocalServer]:
    yield from serve(FILES)


def _project(store: Store, name: str, units: dict[str, list[DataUnit]]) -> ProjectRecord:
    project = store.create_project(name, load_workflow(FIXTURES / "apples.yaml"))
    for dataset, batch in units.items():
        store.add_data_units(project.id, store.dataset(project.id, dataset), batch)
    store.set_role(project.id, BOT, Role.ANNOTATOR)
    return project


def _unit(title: str, **files: str) -> DataUnit:
    return DataUnit(
        data_hash=str(uuid.uuid4()),
        title=title,
        meta=SIZE,
        files={k: DataFile(url=v, original_name=title, is_primary=(k == "image")) for k, v in files.items()},
    )


def _run(store: Store, broker: str, tmp: Path, params: dict[str, Any], **opts: Any) -> dict[str, Any]:
    options = ToTaskOptions(workers=0, stall_timeout=60, **opts)
    settings = Settings(broker_url=broker, home=tmp / "home")
    return ToTaskAction(params, store=store, settings=settings, pipeline=PIPELINE, options=options).start()


def test_example_1_bulk_file_annotation(pg_store: Store, broker: str, files: LocalServer, tmp_path: Path) -> None:
    # Given January's images with pre-generated annotation files on a web server: five good, one broken,
    # one missing (404), one out of the image's bounds; and another collection that must not be touched
    good = [
        _unit(f"jan-{i}.jpg", image=f"{files.url}/img/{i}.jpg", external_annotations=f"{files.url}/ann/{i}.json")
        for i in range(5)
    ]
    bad = [
        _unit("broken.jpg", image=f"{files.url}/img/b.jpg", external_annotations=f"{files.url}/broken.json"),
        _unit("missing.jpg", image=f"{files.url}/img/m.jpg", external_annotations=f"{files.url}/gone.json"),
        _unit("oob.jpg", image=f"{files.url}/img/o.jpg", external_annotations=f"{files.url}/oob.json"),
    ]
    other = [_unit("dec.jpg", image=f"{files.url}/img/d.jpg", external_annotations=f"{files.url}/ann/d.json")]
    project = _project(pg_store, "bulk", {"jan2025": good + bad, "dec2024": other})
    # And a person's label already on the first image
    person = [{"id": "mine", "class_id": 9, "type": "classification"}]
    first = good[0].data_hash
    pg_store.save_label_row(LabelRow(project_id=project.id, data_hash=first, branch="main", objects=person, version=0))

    # When the seed's example 1 runs (batches of 3, so several batches are in flight)
    params = {
        "name": "Bulk_File_Annotation_Jan2025",
        "description": "Apply pre-generated annotations from external tool",
        "project": "bulk",
        "agent": BOT,
        "task_filters": {"status": "pending", "data_collection": "jan2025", "created_at__gte": "2025-01-01"},
        "method": "file",
        "target_specification_name": "external_annotations",
        "pre_processor_params": {},
        "batch_size": 3,
    }
    result = _run(pg_store, broker, tmp_path, params)

    # Then it succeeds with the seed's metrics, kept in the store
    assert result["status"] == "SUCCEEDED", result["message"]
    m = result["metrics"]
    assert (m["total"], m["success"], m["failed"], m["stand_by"], m["progress"]) == (8, 5, 3, 0, 100.0)
    run = pg_store.get_run(result["run_id"])
    assert run.status == "SUCCEEDED" and run.metrics["success"] == 5 and run.params["agent"] == BOT
    # And each failure is kept with its reason, and only its own task failed
    count, failures = list_failures(pg_store, run.id)
    reasons = {f.data_title: f.error for f in failures}
    assert count == 3
    assert reasons["broken.jpg"].startswith("Invalid JSON format in annotation file")
    assert "HTTP 404" in reasons["missing.jpg"]
    assert reasons["oob.jpg"].startswith("Coordinates out of bounds")
    # And the good images carry the file's objects with provenance; the person's label is kept
    row = pg_store.get_label_row(project.id, first)
    assert [o["id"] for o in row.objects] == ["mine", "obj_0"]
    prov = row.objects[1]["provenance"]
    assert prov == {"run_id": run.id, "method": "file", "source": f"{files.url}/ann/0.json"}
    for unit in good[1:]:
        assert [o["score"] for o in pg_store.get_label_row(project.id, unit.data_hash).objects] == [0.95]
    # And no task moved or kept a lease; the other collection was not touched
    tasks = list(pg_store.iter_tasks(project.id))
    assert {t.status.value for t in tasks} == {"NEW"} and all(t.lease_token is None for t in tasks)
    assert len({t.stage_uuid for t in tasks}) == 1
    assert pg_store.get_label_row(project.id, other[0].data_hash).version == 0


def test_example_2_ai_object_detection(pg_store: Store, broker: str, files: LocalServer, tmp_path: Path) -> None:
    # Given photos with faces, a blank image, a file that is no image, and one image assigned to a person
    units = {
        "ast": _unit("astronaut.png", image=f"{files.url}/img/astronaut.png"),
        "ast2": _unit("astronaut2.png", image=f"{files.url}/img/astronaut2.png"),
        "blank": _unit("blank.png", image=f"{files.url}/img/blank.png"),
        "junk": _unit("junk.png", image=f"{files.url}/img/not-an-image.png"),
        "held": _unit("held.png", image=f"{files.url}/img/astronaut.png"),
    }
    project = _project(pg_store, "faces", {"photos": list(units.values())})
    held = next(t for t in pg_store.iter_tasks(project.id) if t.data_title == "held.png")
    pg_store.set_role(project.id, "ann@x.org", Role.ANNOTATOR)
    pg_store.assign(held.uuid, "ann@x.org", by="ann@x.org")

    # When the seed's example 2 runs with the built-in face detector (class 1), a class filter and a minimum size
    params = {
        "name": "AI_Object_Detection_v2",
        "description": "Auto-detect objects",
        "project": "faces",
        "agent": BOT,
        "task_filters": {"status": "pending", "assignee": None, "data_collection": "photos"},
        "method": "inference",
        "pre_processor": "haar-face",
        "pre_processor_params": {
            "confidence_threshold": 0.85,
            "nms_threshold": 0.5,
            "model_config": {"batch_size": 16, "device": "cuda", "use_fp16": True},
            "class_filter": [1, 2, 3],
            "min_object_size": 20,
        },
    }
    result = _run(pg_store, broker, tmp_path, params)

    # Then the unassigned four are processed: two faces found, nothing on the blank image, the junk fails
    assert result["status"] == "SUCCEEDED", result["message"]
    assert (result["metrics"]["total"], result["metrics"]["success"], result["metrics"]["failed"]) == (4, 3, 1)
    for key in ("ast", "ast2"):
        (face,) = pg_store.get_label_row(project.id, units[key].data_hash).objects
        assert face["type"] == "bbox" and face["class_id"] == 1 and face["score"] >= 0.85
        assert face["coordinates"]["width"] >= 20
        assert face["provenance"]["pre_processor"] == "haar-face"
        assert face["provenance"]["pre_processor_version"].startswith("opencv-")
    assert pg_store.get_label_row(project.id, units["blank"].data_hash).objects == []
    _, failures = list_failures(pg_store, result["run_id"])
    assert [f.data_title for f in failures] == ["junk.png"] and "Cannot decode image" in failures[0].error
    # And the person's task was left alone
    assert pg_store.get_label_row(project.id, units["held"].data_hash).version == 0
    assert pg_store.get_task(held.uuid).assignee == "ann@x.org"


def test_critical_error_mid_run_rolls_everything_back(pg_store: Store, broker: str, tmp_path: Path) -> None:
    # Given six images, two with labels people made, and a model server that goes down after two predictions
    model = FakeModel(down_after=2, delay=0.2)
    for srv in serve(model.routes):
        units = [_unit(f"sure-{i}.jpg", image=f"http://images.invalid/sure-{i}.jpg") for i in range(6)]
        project = _project(pg_store, "rollback", {"cars": units})
        before: dict[str, LabelRow] = {}
        for unit in units[:2]:
            objs = [{"id": f"human-{unit.title}", "class_id": 3, "type": "classification"}]
            pg_store.save_label_row(
                LabelRow(project_id=project.id, data_hash=unit.data_hash, branch="main", objects=objs, version=0)
            )
        before = {u.data_hash: pg_store.get_label_row(project.id, u.data_hash) for u in units}

        # When an inference run goes one task at a time, checking the model's health as it goes
        params = {
            "name": "AI_Auto_Annotation",
            "project": "rollback",
            "agent": BOT,
            "task_filters": {"status": "pending"},
            "method": "inference",
            "pre_processor": srv.url,
            "pre_processor_params": {"confidence_threshold": 0.5, "model_config": {"batch_size": 1}},
            "batch_size": 1,
        }
        result = _run(pg_store, broker, tmp_path, params, max_in_flight=1, health_every=0.1)

        # Then the run stops with the seed's message and says it rolled back after work had started
        assert result["status"] == "FAILED"
        assert "Pre-processor not active" in result["message"] and "rolled back" in result["message"]
        assert result["metrics"]["success"] >= 1
        run = pg_store.get_run(result["run_id"])
        assert run.status == "FAILED" and "rolled back" in run.message
        # And every label row is as it was before the run (people's labels back, the run's rows gone)
        for unit in units:
            after = pg_store.get_label_row(project.id, unit.data_hash)
            assert after.objects == before[unit.data_hash].objects, unit.title
        # And no task holds a lease, and the run's scratch folder is gone
        assert all(t.lease_token is None for t in pg_store.iter_tasks(project.id))
        assert not (tmp_path / "home" / "tmp" / f"totask-{run.id}").exists()


AL_WORKFLOW = {
    "name": "ActiveLearning",
    "start": "Pre-label",
    "stages": [
        {"title": "Pre-label", "type": "agent", "pathways": {"confident": "Complete", "uncertain": "Annotate"}},
        {"title": "Annotate", "type": "annotation", "pathways": {"submit": "Complete"}},
        {"title": "Complete", "type": "complete"},
    ],
}


def test_example_3_active_learning_two_rounds(
    pg_store: Store, broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five images in a workflow whose agent stage pre-labels with a model and routes by confidence
    v1, v2 = FakeModel(sure=0.95, unsure=0.6), FakeModel(sure=0.95, unsure=0.93)
    for srv1 in serve(v1.routes):
        for srv2 in serve(v2.routes):
            titles = ["sure-1", "sure-2", "unsure-3", "unsure-4", "unsure-5"]
            units = [_unit(t, image=f"http://images.invalid/{t}.jpg") for t in titles]
            project = pg_store.create_project("al", parse_workflow(AL_WORKFLOW, "al"))
            pg_store.add_data_units(project.id, pg_store.dataset(project.id, "cars"), units)
            pg_store.set_role(project.id, BOT, Role.ANNOTATOR)
            pg_store.set_role(project.id, "ann@x.org", Role.ANNOTATOR)
            wf = pg_store.workflow(project.id)
            hashes = {u.title: u.data_hash for u in units}

            # When round 1 runs the agent stage through a real worker (model v1), Redis DB 11
            url = fresh_redis(REDIS_AGENTS_DB)
            monkeypatch.setenv("ANNOFLOW_BROKER_URL", url)
            monkeypatch.setenv("ANNOFLOW_TEST_MODEL_URL", srv1.url)
            monkeypatch.setenv("PYTHONPATH", str(ROOT))
            settings = Settings(broker_url=url, home=tmp_path / "agents")
            options = EmbeddedOptions(workers=1, batch_size=5, num_retries=0)
            try:
                run_embedded(settings, PIPELINE, pg_store, project, "tests.integration.totask_agents:runner", options)
            finally:
                redis.Redis(db=REDIS_AGENTS_DB).flushdb()

            # Then the sure ones went straight to Complete and the rest to annotators, all pre-labelled
            stage_of = {t.data_title: wf.stages[t.stage_uuid].title for t in pg_store.iter_tasks(project.id)}
            assert stage_of == {
                "sure-1": "Complete", "sure-2": "Complete",
                "unsure-3": "Annotate", "unsure-4": "Annotate", "unsure-5": "Annotate",
            }  # fmt: skip
            for title, score in (("sure-1", 0.95), ("unsure-4", 0.6)):
                (car,) = pg_store.get_label_row(project.id, hashes[title]).objects
                assert car["score"] == score and car["provenance"]["pre_processor"] == srv1.url

            # When a person reviews one uncertain image, and round 2 runs the retrained model (v2)
            # as a ToTask run over what still waits for people, high-confidence predictions only
            done = next(t for t in pg_store.iter_tasks(project.id) if t.data_title == "unsure-3")
            pg_store.assign(done.uuid, "ann@x.org", by="ann@x.org")
            pg_store.act(ActionRequest(done.uuid, Action.SUBMIT, by="ann@x.org"))
            params = {
                "name": "Active_Learning_Round2_High",
                "project": "al",
                "agent": BOT,
                "task_filters": {"status": "pending", "stage": wf.stage("Annotate").uuid},
                "method": "inference",
                "pre_processor": srv2.url,
                "pre_processor_params": {"confidence_threshold": 0.9},
            }
            result = _run(pg_store, broker, tmp_path, params)

            # Then only the two still waiting got v2's sure predictions beside v1's, and stayed with people
            assert result["status"] == "SUCCEEDED", result["message"]
            assert (result["metrics"]["total"], result["metrics"]["success"]) == (2, 2)
            for title in ("unsure-4", "unsure-5"):
                objects = pg_store.get_label_row(project.id, hashes[title]).objects
                assert sorted(o["score"] for o in objects) == [0.6, 0.93]
                assert {o["provenance"]["pre_processor"] for o in objects} == {srv1.url, srv2.url}
            assert len(pg_store.get_label_row(project.id, hashes["unsure-3"]).objects) == 1
            stage_of = {t.data_title: wf.stages[t.stage_uuid].title for t in pg_store.iter_tasks(project.id)}
            assert stage_of["unsure-4"] == stage_of["unsure-5"] == "Annotate" and stage_of["unsure-3"] == "Complete"
