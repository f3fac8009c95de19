"""The pipeline on RabbitMQ (one host): producer, applier and a real worker process through ``annoflow run``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu.connection import Connection

from common.celery_app import DEAD_LETTER_QUEUE, RESULTS_QUEUE, make_queue, stage_queue_name
from common.store import Store
from common.workflow import load_workflow
from tests.helpers import make_units
from tests.integration.pipeline_env import AGENTS, ROOT, WORKFLOW
from tests.servers import require_rabbitmq

pytestmark = pytest.mark.integration

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
QUEUES = (stage_queue_name("pipe", "Sort"), RESULTS_QUEUE, DEAD_LETTER_QUEUE)


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


def test_a_run_on_rabbitmq_moves_every_task_once(rabbitmq: str, tmp_path: Path) -> None:
    # Given a project of 12 tasks (3 routed to Archive) in a SQLite store, and RabbitMQ as the broker
    home = tmp_path / "home"
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    titles = [f"i-{n}" for n in range(9)] + [f"skip-{n}" for n in range(3)]
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(titles))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env |= {
        "ANNOFLOW_BROKER_URL": rabbitmq,
        "ANNOFLOW_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "ANNOFLOW_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }

    # When 'annoflow run' runs producer and applier here and one worker process, batches of 4
    args = ["run", "--project", "pipe", "--agents", AGENTS, "--workers", "1", "--task-batch-size", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "producer", *args], env=env, capture_output=True, text=True, timeout=120
    )

    # Then it exits once drained, with every task in its next stage and one move each in the history
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wf = store.workflow(project.id)
    where = {t.data_title: wf.stages[t.stage_uuid].title for t in store.iter_tasks(project.id)}
    assert where == {t: ("Archive" if t.startswith("skip-") else "Complete") for t in titles}
    moves = [e for e in store.events(project.id) if e.from_stage != e.to_stage]
    assert sorted(e.task_uuid for e in moves) == sorted(t.uuid for t in store.iter_tasks(project.id))
    assert "applied 12" in done.stdout and "dead letters 0" in done.stdout
    # and the warning about the ledger's one host was given
    assert "must run on one host" in done.stdout + done.stderr
    store.close()
