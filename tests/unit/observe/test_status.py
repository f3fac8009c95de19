"""``annoflow status``: the snapshot (stages, queues, throughput, failing tasks, runs), its rendering and --json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import update
from typer.testing import CliRunner

from cli import app as cli
from cli import main as cli_main
from cli.status import render_status
from common.celery_app import DEAD_LETTER_QUEUE
from common.enums import Action
from common.store import ActionRequest, ProjectRecord, Store
from common.store.records import now
from common.store.schema import tasks
from common.workflow import load_workflow
from producer.observe.queue_depth import FileQueueReader
from producer.observe.status import collect_status, run_progress
from tests.helpers import make_units

FIXTURES = Path(__file__).parents[2] / "fixtures"


class FakeReader:
    """A broker with two queues and one unacknowledged message."""

    def depths(self) -> dict[str, int]:
        return {"annoflow.pipe.sort": 3, "annoflow.results": 0}

    def unacked(self) -> int:
        return 1


class DownReader:
    def depths(self) -> dict[str, int]:
        raise ConnectionError("Connection refused")

    def unacked(self) -> int:
        return 0


def busy_project(store: Store) -> ProjectRecord:
    """6 tasks in the agent stage Sort: 2 moved on by a person, 1 failed for good, 1 waiting out a retry."""
    project = store.create_project("pipe", load_workflow(FIXTURES / "queue_pipeline.yaml"))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units([f"item-{i}" for i in range(6)]))
    uuids = [t.uuid for t in store.iter_tasks(project.id)]
    for uuid_ in uuids[:2]:
        store.act(ActionRequest(uuid_, Action.PROCEED, by="lead@acme.com", pathway="done"))
    with store.write() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.uuid == uuids[2])
            .values(lease_token="failed", lease_deadline=None, attempts=3, last_error="ValueError: bad image")
        )
        conn.execute(
            update(tasks)
            .where(tasks.c.uuid == uuids[3])
            .values(
                lease_token="retry:ab12",
                lease_deadline=now() + timedelta(seconds=30),
                attempts=1,
                last_error="timeout after 5s",
            )
        )
    run = store.create_run(project.id, "totask", "Prelabel_Faces", {})
    store.update_run(run.id, metrics={"total": 8, "success": 5, "failed": 1, "stand_by": 2})
    return project


def test_snapshot_counts_stages_throughput_failures_and_runs(store: Store) -> None:
    # Given a project with moved, failed and retrying tasks and a running ToTask run
    busy_project(store)
    done = store.create_run(None, "totask", "Finished_Run", {})
    store.update_run(done.id, status="SUCCEEDED")

    # When a snapshot is taken
    snap = collect_status(store, FakeReader())

    # Then stages show counts by status, queues their depth, throughput the events of the last minute
    by_title = {s.title: s for s in snap.stages}
    assert by_title["Sort"].counts == {"NEW": 4} and by_title["Sort"].total == 4
    assert by_title["Complete"].counts == {"COMPLETED": 2}
    assert by_title["Archive"].total == 0
    assert snap.queues == {"annoflow.pipe.sort": 3, "annoflow.results": 0} and snap.unacked == 1
    assert [(t.project, t.events) for t in snap.throughput] == [("pipe", 2)]
    # And failing tasks carry their last error, the most recent first; only running runs show
    assert {(f.state, f.error, f.stage) for f in snap.failing} == {
        ("failed", "ValueError: bad image", "Sort"),
        ("retrying", "timeout after 5s", "Sort"),
    }
    assert [(r.name, r.progress) for r in snap.runs] == [("Prelabel_Faces", 0.75)]


def test_snapshot_of_one_project_and_an_unreachable_broker(store: Store) -> None:
    # Given two projects and a broker that is down
    busy_project(store)
    store.create_project("other", load_workflow(FIXTURES / "queue_pipeline.yaml"))

    # When a snapshot of one project is taken
    snap = collect_status(store, DownReader(), project="other", failing_limit=5)

    # Then only that project shows, and the broker's outage is reported instead of raised
    assert snap.projects == ["other"]
    assert {s.project for s in snap.stages} == {"other"}
    assert snap.failing == [] and snap.runs == []
    assert snap.broker_error == "ConnectionError: Connection refused"


@pytest.mark.parametrize(
    ("metrics", "fraction"),
    [
        ({"progress": 0.4}, 0.4),
        ({"progress": 40}, 0.4),  # a percentage
        ({"total": 10, "success": 3, "failed": 2}, 0.5),
        ({"total": 0}, 0.0),
        ({}, 0.0),
        ({"progress": True}, 0.0),  # not a number
    ],
)
def test_run_progress(metrics: dict[str, object], fraction: float) -> None:
    assert run_progress(metrics) == pytest.approx(fraction)


def test_render_shows_every_section(store: Store) -> None:
    # Given a snapshot of a busy project
    busy_project(store)
    snap = collect_status(store, FakeReader())

    # When it is rendered
    console = Console(record=True, width=160)
    console.print(render_status(snap))
    text = console.export_text()

    # Then stages, queues, throughput, failing tasks and the run with its progress show
    for expected in ("stages of pipe", "Sort", "annoflow.pipe.sort", "throughput", "ValueError: bad image"):
        assert expected in text
    assert "Prelabel_Faces" in text and "75%" in text
    assert "annoflow tasks retry" in text
    # and no pointer to dead letters while there are none
    assert "dead-letters" not in text


def test_render_points_at_waiting_dead_letters(store: Store) -> None:
    # Given a snapshot whose dead-letter queue holds two messages
    busy_project(store)
    snap = collect_status(store, FakeReader())
    snap.queues[DEAD_LETTER_QUEUE] = 2

    # When it is rendered
    console = Console(record=True, width=160)
    console.print(render_status(snap))

    # Then it says how to look at them
    assert "annoflow dead-letters list" in console.export_text()


def test_file_queue_reader_counts_messages_per_queue(tmp_path: Path) -> None:
    # Given the embedded broker's folder with two stage messages and one result
    for name in ("1_a.annoflow.pipe.sort.msg", "2_b.annoflow.pipe.sort.msg", "3_c.annoflow.results.msg", "junk"):
        (tmp_path / name).touch()

    # When depths are read, Then each queue's files are counted and the known queues are always there
    depths = FileQueueReader(tmp_path).depths()
    assert depths["annoflow.pipe.sort"] == 2 and depths["annoflow.results"] == 1
    assert depths["totask.inference"] == 0
    assert FileQueueReader(tmp_path / "missing").depths()["annoflow.results"] == 0


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An embedded store and broker under tmp_path, as the CLI would open them."""
    monkeypatch.setenv("ANNOFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    for key in ("ANNOFLOW_STORE_URL", "ANNOFLOW_BROKER_URL"):
        monkeypatch.delenv(key, raising=False)
    cli.settings.cache_clear()
    cli_main.register()
    store = Store.open(cli.settings().resolved_store_url)
    yield store
    store.close()
    cli.settings.cache_clear()


def test_cli_status_json_and_table(cli_store: Store) -> None:
    # Given a busy project in the embedded store
    busy_project(cli_store)

    # When `annoflow status --json` runs
    result = CliRunner().invoke(cli.app, ["status", "--project", "pipe", "--json"])

    # Then it prints one snapshot for scripts
    assert result.exit_code == 0, result.output
    snap = json.loads(result.stdout)
    assert snap["projects"] == ["pipe"]
    assert {s["title"]: s["total"] for s in snap["stages"]}["Complete"] == 2
    assert snap["queues"]["annoflow.results"] == 0
    assert snap["runs"][0]["progress"] == 0.75

    # And without --json it renders the tables
    table = CliRunner().invoke(cli.app, ["status"])
    assert table.exit_code == 0, table.output
    assert "stages of pipe" in table.stdout and "Prelabel_Faces" in table.stdout


def test_cli_status_unknown_project_says_how_to_fix(cli_store: Store) -> None:
    # Given no project 'nope', When its status is asked for, Then one line says what is wrong (exit 2)
    result = CliRunner().invoke(cli.app, ["status", "--project", "nope"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "'nope'" in result.stderr


def test_cli_status_watch_refreshes_until_interrupted(cli_store: Store, tmp_path: Path) -> None:
    # Given a busy project and `annoflow status --watch` running in its own process, drawing as on a terminal
    busy_project(cli_store)
    env = {
        **os.environ,
        "ANNOFLOW_HOME": str(tmp_path / "home"),
        "COLUMNS": "160",
        "TTY_INTERACTIVE": "1",
        "TTY_COMPATIBLE": "1",
        "PYTHONFAULTHANDLER": "1",  # SIGABRT makes it print every thread's stack: what it waits on, if it hangs
    }
    # Started in the background by a script (`pytest &`), this test process ignores SIGINT, and a
    # child would inherit that: give it back Python's Ctrl-C handler, as a terminal's shell would.
    ctrl_c = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('cli', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", ctrl_c, "status", "--watch", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read1(4096), b"")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        # When it has redrawn the view a few times and then gets Ctrl-C
        deadline = time.monotonic() + 30
        while b"".join(chunks).count(b"stages of pipe") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        drawn = b"".join(chunks).decode(errors="replace")
        assert drawn.count("stages of pipe") >= 3, f"fewer than 3 views in 30 s:\n{drawn[-3000:]}"
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            masks = [ln for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if ln.startswith("Sig")]
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=10)
            reader.join(5)
            out = b"".join(chunks).decode(errors="replace")
            pytest.fail(f"still running 30 s after Ctrl-C ({masks}); its last output and stacks:\n{out[-6000:]}")
        reader.join(5)
    finally:
        proc.kill()

    # Then it had redrawn the live view, and stops cleanly
    out = b"".join(chunks).decode(errors="replace")
    assert out.count("stages of pipe") >= 3, out
    assert "Prelabel_Faces" in out
    assert proc.returncode == 0, out
