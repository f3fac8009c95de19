"""``annoflow bench pipeline``: the pipeline's throughput against bare Celery on the same broker.

Both runs share one Redis broker and one worker process (a prefork pool of
``workers`` children):

* baseline: bare Celery, one no-op task per message (the task only increments
  a Redis counter so the benchmark sees it finish);
* annoflow: ``annoflow produce`` and ``annoflow apply`` as separate processes,
  the no-op handler in ``workers/bench_agent.py``, results applied to the store;
  timed from the first claim until every task is in Complete (process start-up,
  a few seconds of imports, is left out).

The producer's and the applier's peak RSS are sampled from /proc while they run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from common.celery_app import PipelineSettings, make_celery_app, make_queue
from common.settings import Settings
from common.store import DataFile, DataUnit, Store
from common.store.leases import count_live_leases
from common.workflow import parse_workflow

__all__ = ["run_bench"]

AGENTS = "workers.bench_agent:runner"
_WORKFLOW = {
    "name": "Bench",
    "start": "Noop",
    "stages": [
        {"title": "Noop", "type": "agent", "pathways": {"done": "Complete"}},
        {"title": "Complete", "type": "complete"},
    ],
}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _units(n: int) -> Any:
    for i in range(n):
        yield DataUnit(
            data_hash=str(uuid.UUID(int=i + 1)),
            title=f"item-{i}",
            files={"image": DataFile(url=f"file:///bench/{i}.jpg", is_primary=True)},
        )


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "producer", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _baseline(app: Any, client: redis.Redis, n: int, timeout: float) -> float:
    key = f"annoflow:bench:{uuid.uuid4().hex}"
    queue = make_queue("annoflow.bench.baseline")
    start = time.perf_counter()
    with app.producer_or_acquire() as publisher:
        for _ in range(n):
            app.send_task("annoflow.bench.noop", args=[key], queue=queue, producer=publisher)
    end = time.monotonic() + timeout
    while int(client.get(key) or 0) < n:
        if time.monotonic() > end:
            raise TimeoutError(f"bare Celery finished {int(client.get(key) or 0)} of {n} tasks in {timeout}s")
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    client.delete(key)
    return seconds


def run_bench(
    broker_url: str,
    tasks: int,
    batch_size: int,
    *,
    workers: int = 2,
    max_in_flight: int | None = None,
    store_url: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run both measurements and return the figures (see the module docstring).

    Raises:
        TimeoutError: a run did not finish within ``timeout`` seconds.
    """
    tmp = Path(tempfile.mkdtemp(prefix="annoflow-bench-"))
    store_url = store_url or f"sqlite:///{tmp / 'bench.db'}"
    in_flight = max_in_flight or max(4, min(64, 2000 // batch_size))
    settings = Settings(broker_url=broker_url, home=tmp)
    env = {
        **os.environ,
        "ANNOFLOW_BROKER_URL": broker_url,
        "ANNOFLOW_STORE_URL": store_url,
        "ANNOFLOW_HOME": str(tmp),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    store = Store.open(store_url)
    project = store.create_project(f"bench-{uuid.uuid4().hex[:8]}", parse_workflow(_WORKFLOW, "bench workflow"))
    store.add_data_units(project.id, store.dataset(project.id, "bench"), _units(tasks))
    complete = store.workflow(project.id).stage("Complete").uuid
    client = redis.Redis.from_url(broker_url)
    app = make_celery_app(settings, PipelineSettings())
    worker = _spawn(
        [
            "worker",
            "--agents",
            AGENTS,
            "--concurrency",
            str(workers),
            "--loglevel",
            "WARNING",
            "--queues",
            "annoflow.bench.noop,annoflow.bench.baseline",
            "--bench-counter",
            broker_url,
        ],
        env,
        tmp / "worker.log",
    )
    procs = [worker]
    try:
        _baseline(app, client, min(tasks, 200), 120)  # warm-up: the worker is up and its children loaded
        baseline_s = _baseline(app, client, tasks, timeout)
        producer = _spawn(
            [
                "produce",
                "--project",
                project.name,
                "--agents",
                AGENTS,
                "--task-batch-size",
                str(batch_size),
                "--max-in-flight",
                str(in_flight),
            ],
            env,
            tmp / "producer.log",
        )
        applier = _spawn(["apply", "--num-retries", "0"], env, tmp / "applier.log")
        procs += [producer, applier]
        rss = {"producer": 0.0, "applier": 0.0}
        end = time.monotonic() + timeout
        # The clock starts at the first claim, not at process start (imports take seconds on a busy machine).
        while not count_live_leases(store, project.id) and not store.counts(project.id).get(complete):
            if time.monotonic() > end:
                raise TimeoutError(f"the producer claimed nothing in {timeout}s; logs in {tmp}")
            time.sleep(0.005)
        start = time.perf_counter()
        while store.counts(project.id).get(complete, {}).get("COMPLETED", 0) < tasks:
            if time.monotonic() > end:
                raise TimeoutError(f"annoflow did not finish {tasks} tasks in {timeout}s; logs in {tmp}")
            rss["producer"] = max(rss["producer"], _rss_mb(producer.pid))
            rss["applier"] = max(rss["applier"], _rss_mb(applier.pid))
            time.sleep(0.1)
        annoflow_s = time.perf_counter() - start
    finally:
        for proc in reversed(procs):
            _stop(proc)
        store.close()
    annoflow_rate = tasks / annoflow_s
    baseline_rate = tasks / baseline_s
    return {
        "tasks": tasks,
        "batch_size": batch_size,
        "max_in_flight": in_flight,
        "workers": workers,
        "broker": broker_url,
        "store": store_url.split("://")[0],
        "annoflow_seconds": round(annoflow_s, 3),
        "celery_baseline_seconds": round(baseline_s, 3),
        "annoflow_tasks_per_s": round(annoflow_rate, 1),
        "celery_baseline_tasks_per_s": round(baseline_rate, 1),
        "ratio": round(annoflow_rate / baseline_rate, 3),
        "producer_max_rss_mb": round(rss["producer"], 1),
        "applier_max_rss_mb": round(rss["applier"], 1),
        "logs": str(tmp),
    }
