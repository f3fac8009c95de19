"""ToTask runs and agent runs record their lineage by themselves, with no server at all.

Embedded mode throughout: a SQLite store and the filesystem broker under a temporary
ANNOFLOW_HOME, real worker processes started by the run, local files allowed by
ANNOFLOW_FILE_ROOTS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app as cli
from cli import main as cli_main
from common.celery_app import PipelineSettings
from common.enums import Role
from common.lineage import LineageGraph, NodeKind, lineage_graph
from common.settings import Settings
from common.store import DataFile, DataUnit, ProjectRecord, Store
from common.workflow import load_workflow
from producer.totask.action import ToTaskAction, ToTaskOptions
from producer.totask.workers import spawn_totask_worker, stop_worker
from tests.conftest import FIXTURES
from tests.helpers import make_units
from tests.integration.pipeline_env import AGENTS, ROOT, WORKFLOW
from tests.integration.totask_env import ASTRONAUT, BLANK, SIZE, native

pytestmark = pytest.mark.integration

BOT = "bot@x.org"
PIPELINE = PipelineSettings(soft_time_limit=20, hard_time_limit=30, visibility_timeout=60)


def _annoflow(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run an ``annoflow`` command as its own process, embedded under ``tmp/home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env.update(ANNOFLOW_HOME=str(tmp / "home"), PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=120
    )


def _cli(monkeypatch: pytest.MonkeyPatch, tmp: Path, *args: str) -> str:
    """Run an ``annoflow`` command in this process against the store under ``tmp/home``."""
    for key in ("ANNOFLOW_STORE_URL", "ANNOFLOW_BROKER_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ANNOFLOW_HOME", str(tmp / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    cli.settings.cache_clear()
    cli_main.register()
    try:
        result = CliRunner().invoke(cli.app, list(args))
    finally:
        cli.settings.cache_clear()
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}"
    return result.stdout


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


@dataclass(frozen=True)
class Shared:
    """One embedded home for the ToTask runs that need a worker: its store and its root folder."""

    store: Store
    root: Path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store and one ToTask worker process (both methods) that the runs of this module share.

    Starting a worker costs seconds; each test has its own projects, so one worker serves all.
    """
    root = tmp_path_factory.mktemp("lineage-runs")
    settings = Settings(home=root / "home", file_roots=str(root))
    store = Store.open(settings.resolved_store_url)
    worker = spawn_totask_worker(settings, PIPELINE, "file,inference", 1, root / "worker.log", root)
    yield Shared(store, root)
    # Idle by now: no need to wait out Celery's own shutdown, the group is killed after a second.
    stop_worker(worker, idle=True, grace_s=1.0)
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
    """A run under ``tmp/home`` that uses the workers already running there (none: ``workers=0``)."""
    settings = Settings(home=tmp / "home", file_roots=str(tmp))
    options = ToTaskOptions(**({"workers": 0} | opts))
    return ToTaskAction(params, store=store, settings=settings, pipeline=PIPELINE, options=options)


def _run_node(graph: LineageGraph, run_id: str) -> int:
    node = graph.find(NodeKind.RUN, run_id)
    assert node is not None, f"no run node {run_id} in {graph.nodes}"
    return node.id


def test_totask_file_runs_record_lineage_and_survive_a_lineage_failure(
    shared: Shared, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two projects of images whose annotation files sit in local folders (one file broken)
    store, root = shared.store, shared.root
    project = _project(store, "local", _file_units(root / "annotations", 7, broken=6))
    sturdy = _project(store, "sturdy", _file_units(root / "few", 2))

    # When the first run goes through while every lineage write fails
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("lineage tables are gone")

    with monkeypatch.context() as patch:
        patch.setattr("common.lineage.recorder.record_lineage", broken)
        failed_lineage = _action(store, root, _file_params("sturdy")).start()

    # Then that run still succeeded and wrote its labels; the lineage failure was only logged
    assert failed_lineage["status"] == "SUCCEEDED", failed_lineage["message"]
    assert all(store.get_label_row(sturdy.id, t.data_hash).objects for t in store.iter_tasks(sturdy.id))
    assert "was not recorded (the run goes on): lineage tables are gone" in caplog.text
    assert lineage_graph(store, "project", project="sturdy").nodes == []

    # When the second run goes through, and 'annoflow lineage' draws it as JSON
    result = _action(store, root, _file_params("local")).start()
    assert result["status"] == "SUCCEEDED" and result["metrics"]["success"] == 6
    data = json.loads(_cli(monkeypatch, root, "lineage", "--project", "local", "--format", "json"))

    # Then the run read the project, its dataset and the folder of its seven files, and wrote the six tasks
    kinds = _by_kind(data)
    (run,) = [n for n in kinds["run"] if n["key"] == result["run_id"]]
    ins, outs = _edges(data, run["id"])
    (proj,) = kinds["project"]
    (dataset,) = kinds["dataset"]
    (folder,) = kinds["folder"]
    assert proj["key"] == project.id and dataset["title"] == "local-data"
    assert folder["key"] == str(root / "annotations") and folder["attrs"]["files"] == 7
    assert ins == {proj["id"], dataset["id"], folder["id"]}
    written = {t.uuid for t in store.iter_tasks(project.id) if t.data_title != "img-6.jpg"}
    assert {n["key"] for n in kinds["task"]} == written
    assert outs == {n["id"] for n in kinds["task"]}


def test_totask_inference_run_records_the_model_and_its_cascade_file(shared: Shared) -> None:
    # Given two local images and the built-in face detector
    store = shared.store
    images = shared.root / "images"
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
    result = _action(store, shared.root, params).start()

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
    # Given three annotation files and no worker at all to answer (this test's own home)
    _project(store, "stalled", _file_units(tmp_path / "ann", 3))

    # When the run stalls and is rolled back
    result = _action(store, tmp_path, _file_params("stalled"), stall_timeout=0.5).start()

    # Then it FAILED, and its lineage holds the project, the dataset and each file it read, but no task
    assert result["status"] == "FAILED" and "rolled back" in result["message"]
    graph = lineage_graph(store, "project", project="stalled")
    run = _run_node(graph, result["run_id"])
    ins = [graph.node(e.source) for e in graph.edges if e.target == run]
    assert not [e for e in graph.edges if e.source == run]
    assert sorted(n.kind.value for n in ins) == ["dataset", "file", "file", "file", "project"]
    assert {n.key for n in ins if n.kind is NodeKind.FILE} == {str(tmp_path / "ann" / f"{i}.json") for i in range(3)}


def test_agent_run_records_project_agent_module_and_moved_tasks(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given four tasks in the agent stage of project 'pipe' (the test runner's project)
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units([f"it-{i}" for i in range(4)]))

    # When 'annoflow run' drains it with one worker process
    done = _annoflow(["run", "--project", "pipe", "--agents", AGENTS, "--workers", "1"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = _cli(monkeypatch, tmp_path, "runs", "list", "--project", "pipe")
    data = json.loads(_cli(monkeypatch, tmp_path, "lineage", "--project", "pipe", "--format", "json"))

    # Then the run is listed as an agent run with its counts
    (run_record,) = store.list_runs(project.id)
    assert (run_record.kind, run_record.status, run_record.name) == ("agent", "SUCCEEDED", AGENTS)
    assert run_record.metrics["applied"] == 4 and run_record.metrics["failed"] == 0
    assert "agent" in listed and "SUCCEEDED" in listed

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


def test_produce_session_records_an_agent_run_with_its_inputs(store: Store, tmp_path: Path) -> None:
    # Given three tasks in the agent stage, and 'annoflow produce' publishing them (no applier runs here)
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units([f"it-{i}" for i in range(3)]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env.update(ANNOFLOW_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "cli", "produce", "--project", "pipe", "--agents", AGENTS]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # When it has claimed every task, and is stopped with SIGTERM
        deadline = time.monotonic() + 60
        while not all(t.lease_token for t in store.iter_tasks(project.id)):
            assert proc.poll() is None and time.monotonic() < deadline, "annoflow produce never claimed the tasks"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out

    # Then its run (kind agent) ended with what it published, and its lineage reads the project and the module
    (run,) = store.list_runs(project.id)
    assert (run.kind, run.status, run.metrics["total"]) == ("agent", "SUCCEEDED", 3)
    graph = lineage_graph(store, "project", project="pipe")
    node = _run_node(graph, run.id)
    ins = {(graph.node(e.source).kind, graph.node(e.source).key) for e in graph.edges if e.target == node}
    assert ins == {(NodeKind.PROJECT, project.id), (NodeKind.FILE, str(ROOT / "tests/integration/pipeline_agents.py"))}
