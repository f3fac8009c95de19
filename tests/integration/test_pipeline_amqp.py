"""The pipeline on RabbitMQ: through ``annoflow run`` on one host, and as three processes that share nothing
but the broker and a PostgreSQL store (as on three hosts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu.connection import Connection
from sqlalchemy import func, select

from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE, make_queue, stage_queue_name
from common.store import Store
from common.store.schema import inflight_batches
from common.workflow import load_workflow
from tests.conftest import _postgres_store
from tests.helpers import make_units
from tests.integration.pipeline_env import AGENTS, PIPELINE_ENV, ROOT, WORKFLOW, kill_group, schema_of, wait_until
from tests.servers import POSTGRES_URL, require_rabbitmq

pytestmark = pytest.mark.integration

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
QUEUES = (stage_queue_name("pipe", "Sort"), RESULTS_QUEUE, DEAD_LETTER_QUEUE)
TITLES = [f"i-{n}" for n in range(9)] + [f"skip-{n}" for n in range(3)]


@pytest.fixture
def rabbitmq() -> Iterator[str]:
    """RabbitMQ's default vhost with none of the pipeline's queues, and none left after."""
    require_rabbitmq()

    def clear() -> None:
        with Connection(AMQP_URL) as conn:
            for name in QUEUES:
                make_queue(name)(conn.default_channel).delete()

    clear()
    yield AMQP_URL
    clear()


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    return env | PIPELINE_ENV | {"PYTHONPATH": str(ROOT)} | values


def _each_task_moved_once(store: Store, project_id: str) -> None:
    wf = store.workflow(project_id)
    where = {t.data_title: wf.stages[t.stage_uuid].title for t in store.iter_tasks(project_id)}
    assert where == {t: ("Archive" if t.startswith("skip-") else "Complete") for t in TITLES}
    moves = [e for e in store.events(project_id) if e.from_stage != e.to_stage]
    assert sorted(e.task_uuid for e in moves) == sorted(t.uuid for t in store.iter_tasks(project_id))


def _ledger_rows(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inflight_batches)).scalar_one())


def test_a_run_on_rabbitmq_moves_every_task_once(rabbitmq: str, tmp_path: Path) -> None:
    # Given a project of 12 tasks (3 routed to Archive) in a SQLite store, and RabbitMQ as the broker
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(TITLES))
    env = _env(
        ANNOFLOW_BROKER_URL=rabbitmq,
        ANNOFLOW_STORE_URL=f"sqlite:///{tmp_path / 'store.db'}",
        ANNOFLOW_HOME=str(tmp_path / "home"),
    )

    # When 'annoflow run' runs producer and applier here and one worker process, batches of 4
    args = ["run", "--project", "pipe", "--agents", AGENTS, "--workers", "1", "--task-batch-size", "4"]
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=120)

    # Then it exits once drained, with every task in its next stage and one move each in the history
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _each_task_moved_once(store, project.id)
    assert "applied 12" in done.stdout and "dead letters 0" in done.stdout
    # and the in-flight ledger, kept in the store, holds no batch any more
    assert _ledger_rows(store) == 0
    store.close()


@pytest.fixture
def pg_store() -> Iterator[Store]:
    yield from _postgres_store()


def test_producer_applier_and_worker_apart_share_only_broker_and_store(
    rabbitmq: str, pg_store: Store, tmp_path: Path
) -> None:
    # Given 12 tasks in a PostgreSQL store, and RabbitMQ as the broker
    store = pg_store
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(TITLES))
    schema = schema_of(store)

    # When a worker, an applier and a producer run as separate processes, each with a home of
    # its own (nothing shared on disk, as on three hosts), in batches of 4, two in flight at most
    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        env = _env(
            ANNOFLOW_BROKER_URL=rabbitmq,
            ANNOFLOW_STORE_URL=POSTGRES_URL,
            PGOPTIONS=f"-csearch_path={schema}",  # libpq takes the test's schema from here
            ANNOFLOW_HOME=str(tmp_path / name),
        )
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def logs() -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("*.log")))

    worker = start("worker", "worker", "--agents", AGENTS, "--concurrency", "1", "--loglevel", "WARNING")
    applier = start("applier", "apply")
    producer = start(
        "producer", "produce", "--project", "pipe", "--agents", AGENTS,
        "--task-batch-size", "4", "--max-in-flight", "2",
    )  # fmt: skip
    try:
        # Then the producer, told by the applier (through the store) as each batch is applied,
        # drains the stage and exits on its own
        wait_until(lambda: producer.poll() is not None, 90, f"the producer to exit; logs:\n{logs()}")
        assert producer.returncode == 0, logs()
        wait_until(lambda: _ledger_rows(store) == 0, 30, f"an empty in-flight ledger; logs:\n{logs()}")
    finally:
        for proc in (producer, applier, worker):
            kill_group(proc, signal.SIGTERM)

    # and every task reached its next stage with exactly one move in the history
    _each_task_moved_once(store, project.id)
