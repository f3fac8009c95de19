"""ToTask runs and agent runs record their lineage by themselves, with no server at all.

Embedded mode throughout: a SQLite store and the filesystem broker under a temporary
ANNOFLOW_HOME, real worker processes started by the run, local files allowed by
ANNOFLOW_FILE_ROOTS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.celery_app import PipelineSettings
from common.enums import Role
from common.lineage import LineageGraph, NodeKind, lineage_graph
from common.settings import Settings
from common.store import DataFile, DataUnit, ProjectRecord, Store
from common.workflow import load_workflow
from producer.totask import ToTaskAction, ToTaskOptions
from tests.conftest import FIXTURES
from tests.helpers import make_units
from tests.integration.pipeline_env import AGENTS, ROOT, WORKFLOW
from tests.integration.totask_env import ASTRONAUT, BLANK, SIZE, native

pytestmark = pytest.mark.integration

BOT = "bot@x.org"
PIPELINE = PipelineSettings(soft_time_limit=20, hard_time_limit=30, visibility_timeout=60)


def _annoflow(args: list[str], home: Path, roots: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env.update(ANNOFLOW_HOME=str(home), ANNOFLOW_FILE_ROOTS=str(roots), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "producer", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _lineage_json(home: Path, project: str, cwd: Path) -> dict[str, Any]:
    shown = _annoflow(["lineage", "--project", project, "--format", "json"], home, cwd, cwd)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    data: dict[str, Any] = json.loads(shown.stdout)
    return data


def _by_kind(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for node in data["nodes"]:
        out.setdefault(node["kind"], []).append(node)
    return out


def _edges(data: dict[str, Any], run_node: str) -> tuple[set[str], set[str]]:
    """The ids of the nodes flowing into ``run_node`` and out of it."""
    ins = {e["source"] for e in data["edges"] if e["target"] == run_node}
    outs = {e["target"] for e in data["edges"] if e["source"] == run_node}
    return ins, outs


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'annoflow.db'}")
    yield store
    store.close()


def _project(store: Store, name: str, units: list[DataUnit]) -> ProjectRecord:
    project = store.create_project(name, load_workflow(FIXTURES / "apples.yaml"))
    store.add_data_units(project.id, store.dataset(project.id, f"{name}-data"), units)
    store.set_role(project.id, BOT, Role.ANNOTATOR)
    return project


def _file_units(folder: Path, n: int, broken: int | None = None) -> list[DataUnit]:
    folder.mkdir(parents=True, exist_ok=True)
    units = []
    for i in range(n):
        path = folder / f"{i}.json"
        path.write_bytes(b"{oops" if i == broken else native((1, 2, 30, 40), ident=f"f{i}"))
        files = {"image": DataFile(url=f"file:///img/{i}.jpg", is_primary=True), "labels": DataFile(url=str(path))}
        units.append(DataUnit(data_hash=str(uuid.uuid4()), title=f"img-{i}.jpg", meta=SIZE, files=files))
    return units


def _file_params(project: str) -> dict[str, Any]:
    return {
        "name": f"{project}_files",
        "project": project,
        "agent": BOT,
        "task_filters": {"status": "pending"},
        "method": "file",
        "target_specification_name": "labels",
        "batch_size": 4,
    }


def _action(store: Store, tmp: Path, params: dict[str, Any], **opts: Any) -> ToTaskAction:
    settings = Settings(home=tmp / "home", file_roots=str(tmp))
    options = ToTaskOptions(**({"workers": 1} | opts))
    return ToTaskAction(params, store=store, settings=settings, pipeline=PIPELINE, options=options)


def _run_node(graph: LineageGraph, run_id: str) -> int:
    node = graph.find(NodeKind.RUN, run_id)
    assert node is not None, f"no run node {run_id} in {graph.nodes}"
    return node.id


def test_totask_file_run_records_project_dataset_files_and_tasks(store: Store, tmp_path: Path) -> None:
    # Given seven images whose annotation files sit in one local folder (one file broken)
    units = _file_units(tmp_path / "annotations", 7, broken=6)
    project = _project(store, "local", units)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(_file_params("local")))

    # When 'annoflow totask run' runs it with one worker process, then the lineage is drawn as JSON
    home = tmp_path / "home"
    done = _annoflow(["totask", "run", str(params), "--workers", "1", "--json"], home, tmp_path, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCEEDED" and result["metrics"]["success"] == 6
    data = _lineage_json(home, "local", tmp_path)

    # Then the run read the project, its dataset and the folder of its seven files, and wrote the six tasks
    kinds = _by_kind(data)
    (run,) = [n for n in kinds["run"] if n["key"] == result["run_id"]]
    ins, outs = _edges(data, run["id"])
    (proj,) = kinds["project"]
    (dataset,) = kinds["dataset"]
    (folder,) = kinds["folder"]
    assert proj["key"] == project.id and dataset["title"] == "local-data"
    assert folder["key"] == str(tmp_path / "annotations") and folder["attrs"]["files"] == 7
    assert ins == {proj["id"], dataset["id"], folder["id"]}
    written = {t.uuid for t in store.iter_tasks(project.id) if t.data_title != "img-6.jpg"}
    assert {n["key"] for n in kinds["task"]} == written
    assert outs == {n["id"] for n in kinds["task"]}


def test_totask_inference_run_records_the_model_and_its_cascade_file(store: Store, tmp_path: Path) -> None:
    # Given two local images and the built-in face detector
    images = tmp_path / "images"
    images.mkdir()
    (images / "astronaut.png").write_bytes(ASTRONAUT)
    (images / "blank.png").write_bytes(BLANK)
    units = [
        DataUnit(
            data_hash=str(uuid.uuid4()),
            title=name,
            meta=SIZE,
            files={"image": DataFile(url=str(images / name), is_primary=True)},
        )
        for name in ("astronaut.png", "blank.png")
    ]
    project = _project(store, "faces", units)
    params = _file_params("faces") | {"method": "inference", "pre_processor": "haar-face"}
    del params["target_specification_name"]

    # When the inference run goes through a worker process
    result = _action(store, tmp_path, params).start()

    # Then its inputs are the project, the dataset, the model by name and version, and the cascade XML it
    # loaded (as model weights); its outputs the two tasks it labelled
    assert result["status"] == "SUCCEEDED", result["message"]
    graph = lineage_graph(store, "project", project="faces")
    run = _run_node(graph, result["run_id"])
    ins = [graph.node(e.source) for e in graph.edges if e.target == run]
    outs = [graph.node(e.target) for e in graph.edges if e.source == run]
    files = {n.key: n for n in ins if n.kind is NodeKind.FILE}
    (model,) = [n for k, n in files.items() if k.startswith("haar-face@opencv-")]
    (cascade,) = [n for k, n in files.items() if k.endswith("haarcascade_frontalface_default.xml")]
    assert model.attrs["model_weight"] and model.attrs["version"].startswith("opencv-")
    assert model.title.startswith("haar-face opencv-") and cascade.attrs["model_weight"]
    assert Path(cascade.key).is_file()
    assert {n.kind for n in ins} == {NodeKind.PROJECT, NodeKind.DATASET, NodeKind.FILE}
    assert sorted(n.key for n in outs) == sorted(t.uuid for t in store.iter_tasks(project.id))


def test_rolled_back_run_records_its_inputs_and_no_tasks(store: Store, tmp_path: Path) -> None:
    # Given three annotation files and no worker at all to answer
    _project(store, "stalled", _file_units(tmp_path / "ann", 3))

    # When the run stalls and is rolled back
    result = _action(store, tmp_path, _file_params("stalled"), workers=0, stall_timeout=0.5).start()

    # Then it FAILED, and its lineage holds the project, the dataset and each file it read, but no task
    assert result["status"] == "FAILED" and "rolled back" in result["message"]
    graph = lineage_graph(store, "project", project="stalled")
    run = _run_node(graph, result["run_id"])
    ins = [graph.node(e.source) for e in graph.edges if e.target == run]
    assert not [e for e in graph.edges if e.source == run]
    assert sorted(n.kind.value for n in ins) == ["dataset", "file", "file", "file", "project"]
    assert {n.key for n in ins if n.kind is NodeKind.FILE} == {str(tmp_path / "ann" / f"{i}.json") for i in range(3)}


def test_lineage_failure_does_not_break_the_run(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a lineage store that fails on every write
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("lineage tables are gone")

    monkeypatch.setattr("common.lineage.recorder.record_lineage", broken)
    project = _project(store, "sturdy", _file_units(tmp_path / "ann", 2))

    # When a ToTask run goes through
    result = _action(store, tmp_path, _file_params("sturdy")).start()

    # Then the run succeeded and wrote its labels; the lineage failure was only logged
    assert result["status"] == "SUCCEEDED", result["message"]
    assert all(store.get_label_row(project.id, t.data_hash).objects for t in store.iter_tasks(project.id))
    assert "was not recorded (the run goes on): lineage tables are gone" in caplog.text
    assert lineage_graph(store, "project", project="sturdy").nodes == []


def test_agent_run_records_project_agent_module_and_moved_tasks(store: Store, tmp_path: Path) -> None:
    # Given four tasks in the agent stage of project 'pipe' (the test runner's project)
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units([f"it-{i}" for i in range(4)]))
    home = tmp_path / "home"

    # When 'annoflow run' drains it with one worker process
    done = _annoflow(["run", "--project", "pipe", "--agents", AGENTS, "--workers", "1"], home, tmp_path, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = _annoflow(["runs", "list", "--project", "pipe"], home, tmp_path, tmp_path)
    data = _lineage_json(home, "pipe", tmp_path)

    # Then the run is listed as an agent run with its counts
    (run_record,) = store.list_runs(project.id)
    assert (run_record.kind, run_record.status, run_record.name) == ("agent", "SUCCEEDED", AGENTS)
    assert run_record.metrics["applied"] == 4 and run_record.metrics["failed"] == 0
    assert "agent" in listed.stdout and "SUCCEEDED" in listed.stdout

    # And its lineage reads the project and the runner module, and writes the four tasks it moved
    kinds = _by_kind(data)
    (run,) = kinds["run"]
    assert run["key"] == run_record.id and run["attrs"]["run_kind"] == "agent"
    ins, outs = _edges(data, run["id"])
    (proj,) = kinds["project"]
    (module,) = kinds["file"]
    assert module["key"] == str(ROOT / "tests" / "integration" / "pipeline_agents.py")
    assert ins == {proj["id"], module["id"]}
    assert {n["key"] for n in kinds["task"]} == {t.uuid for t in store.iter_tasks(project.id)}
    assert outs == {n["id"] for n in kinds["task"]}
