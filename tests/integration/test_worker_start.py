"""``annoflow worker``: a handler module that does not import stops it at start; it runs without the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.store import Store
from tests.integration.pipeline_env import ROOT, pipeline_for, run_in_thread, wait_until
from tests.servers import require_redis

pytestmark = pytest.mark.integration


def _worker(agents: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "cli", "worker", "--agents", agents, "--concurrency", "1"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("source", "agents", "expected"),
    [
        (
            'raise RuntimeError("model weights missing")\n',
            "broken_agents:runner",
            "RuntimeError: model weights missing",
        ),
        (None, "no_such_agents:runner", "No module named 'no_such_agents'"),
        ("runner = None\n", "broken_agents:other", "other"),
    ],
)
def test_a_handler_module_that_does_not_load_stops_the_worker_at_start(
    tmp_path: Path, source: str | None, agents: str, expected: str
) -> None:
    # Given a handler module that raises on import, one that is not there, or a name it lacks
    require_redis()
    if source is not None:
        (tmp_path / "broken_agents.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env |= {"ANNOFLOW_BROKER_URL": "redis://127.0.0.1:6379/14", "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}

    # When a worker is started with it
    done = _worker(agents, env)

    # Then it exits at once with one line that names the module and what went wrong, no traceback
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and agents.split(":")[0] in error and expected in error, done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_runs_its_batches_with_no_store_to_reach(tmp_path: Path) -> None:
    # Given 12 tasks, and a worker whose ANNOFLOW_STORE_URL points at nothing
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    titles = [f"item-{i}" for i in range(9)] + [f"skip-{i}" for i in range(3)]
    with pipeline_for(store, tmp_path, titles) as pipe:
        pipe.start(
            *("worker", "--agents", "tests.integration.pipeline_agents:runner", "--concurrency", "1"),
            env=pipe.env(ANNOFLOW_STORE_URL="postgresql://nobody@127.0.0.1:1/nowhere"),
            log="worker",
        )
        producer = pipe.producer(batch_size=4, max_in_flight=3)
        applier = pipe.applier(num_retries=0)
        applying = run_in_thread(applier.run)

        # When the producer drains the stage and the applier applies the results
        producer.run()
        wait_until(lambda: applier.stats.applied >= 12, 30, f"12 applied results; logs:\n{pipe.logs()}")
        applier.stop.set()
        applying.join(5)

        # Then every task moved: the worker needed only the broker
        wf = store.workflow(pipe.project.id)
        where = sorted(wf.stages[t.stage_uuid].title for t in store.iter_tasks(pipe.project.id))
        assert where == ["Archive"] * 3 + ["Complete"] * 9
        assert applier.stats.failed == 0 and applier.stats.dead_letters == 0
    store.close()
