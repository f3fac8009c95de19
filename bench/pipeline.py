"""``annoflow bench pipeline``: the pipeline's throughput against bare Celery on the same broker.

Both runs share one Redis broker and one worker process (a prefork pool of
``workers`` children) with the same Celery settings:

* baseline: bare Celery, one no-op task per message (the task only increments
  a Redis counter so the benchmark sees it finish), ``baseline_tasks``
  messages (default: ``tasks``, at most 10,000: the rate is steady long before),
  half of them before the annoflow run and half after it, so that a machine
  whose speed drifts (a shared virtual machine) weighs on both sides alike;
* annoflow: ``annoflow produce`` and ``annoflow apply`` as separate processes,
  the no-op handler in ``bench/agent.py``, results applied to the store;
  timed from the first claim until every task is in Complete (process start-up,
  a few seconds of imports, is left out).

Besides the rates it reports where the CPU went during each run (seconds of
CPU of the producer, the applier, the worker and its pool children, Redis,
and the benchmark itself, which publishes the baseline and polls the store;
with a PostgreSQL store also the database server's processes), the same per
task of the annoflow run, and the producer's and the applier's RSS sampled from /proc while they run:
the peak and a timeline (at most 60 points) to show that memory stays flat.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, make_url, select

from bench.probes import Cpu, rss_mb, thin
from bench.processes import spawn, stop
from common.celery_app import PipelineSettings, make_celery_app, make_queue
from common.enums import TaskStatus
from common.settings import Settings
from common.store import DataFile, DataUnit, Store
from common.store.schema import tasks as tasks_table
from common.workflow import parse_workflow
from producer.apply.stats import KEY as APPLY_METRICS_KEY
from producer.apply.stats import LAST_APPLIED_AT
from producer.enumerate.inflight import KEY_PREFIX as LEDGER_PREFIX

__all__ = ["run_bench"]

AGENTS = "bench.agent:runner"
_WORKFLOW = {
    "name": "Bench",
    "start": "Noop",
    "stages": [
        {"title": "Noop", "type": "agent", "pathways": {"done": "Complete"}},
        {"title": "Complete", "type": "complete"},
    ],
}


def _units(n: int) -> Iterator[DataUnit]:
    for i in range(n):
        yield DataUnit(
            data_hash=str(uuid.UUID(int=i + 1)),
            title=f"item-{i}",
            files={"image": DataFile(url=f"file:///bench/{i}.jpg", is_primary=True)},
        )


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


def _applied(client: redis.Redis) -> int:
    """Tasks the appliers on this broker have applied so far (their /metrics counter in Redis)."""
    return int(client.hget(APPLY_METRICS_KEY, "applied") or 0)


def _last_applied(client: redis.Redis, since: float) -> float | None:
    """Seconds from ``since`` (Unix time) to when the appliers last applied results, if after it."""
    raw = client.hget(APPLY_METRICS_KEY, LAST_APPLIED_AT)
    at = float(raw) if isinstance(raw, bytes | str) else None
    return at - since if at is not None and at > since else None


def _completed(store: Store, project_id: str, stage_uuid: str) -> int:
    """Tasks that reached the Complete stage (an index-only count)."""
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    tasks_table.c.project_id == project_id,
                    tasks_table.c.stage_uuid == stage_uuid,
                    tasks_table.c.status == TaskStatus.COMPLETED.value,
                )
            ).scalar_one()
        )


def run_bench(
    broker_url: str,
    tasks: int,
    batch_size: int,
    *,
    workers: int = 2,
    max_in_flight: int | None = None,
    store_url: str | None = None,
    baseline_tasks: int | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run both measurements and return the figures (see the module docstring).

    Args:
        broker_url: the Redis broker both runs use.
        tasks: tasks the annoflow run pushes through.
        batch_size: tasks per annoflow message.
        workers: worker pool processes (both runs).
        max_in_flight: the producer's limit of unapplied messages (default: about 15,000 tasks' worth, at most 150).
        store_url: the store (default: a fresh SQLite file); a PostgreSQL URL works too.
        baseline_tasks: one-task messages for bare Celery (default: ``tasks``, at most 10,000).
        timeout: seconds each run may take.

    Raises:
        TimeoutError: a run did not finish within ``timeout`` seconds.
    """
    tmp = Path(tempfile.mkdtemp(prefix="annoflow-bench-"))
    own_store = store_url is None
    store_url = store_url or f"sqlite:///{tmp / 'bench.db'}"
    # About 15,000 tasks in flight (at most 150 messages): deep enough that the producer's refills and
    # the applier's groups overlap with the workers; a shallower pipeline leaves the cores idle in turns.
    in_flight = max_in_flight or max(4, min(150, 15_000 // batch_size))
    n_baseline = max(2, baseline_tasks or min(tasks, 10_000))
    n_before = n_baseline // 2
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
    noop = store.workflow(project.id).stage("Noop").uuid
    client = redis.Redis.from_url(broker_url)
    app = make_celery_app(settings, PipelineSettings())
    worker = spawn(
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
        _baseline(app, client, min(n_baseline, 200), 120)  # warm-up: the worker is up and its children loaded
        baseline_cpu = Cpu(client, {"worker": worker.pid})
        baseline_cpu.start()
        before_s = _baseline(app, client, n_before, timeout)
        baseline_cpu.pause()
        producer = spawn(
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
                # Keep polling once drained instead of exiting: the benchmark stops it, after the
                # last memory sample (a producer gone by then would read as 0 MB).
                "--refresh-every",
                "3600",
            ],
            env,
            tmp / "producer.log",
        )
        applied_before = _applied(client)  # the counter is shared with whatever used this database before
        applier = spawn(["apply", "--num-retries", "0"], env, tmp / "applier.log")
        procs += [producer, applier]
        # The database server's CPU too, when it is PostgreSQL (its backends for this database, read from /proc).
        pg_db = make_url(store_url).database if store_url.startswith("postgres") else None
        cpu = Cpu(client, {"producer": producer.pid, "applier": applier.pid, "worker": worker.pid}, postgres_db=pg_db)
        end = time.monotonic() + timeout
        # The clock starts at the first claim, not at process start (imports take seconds on a busy
        # machine): the producer puts its first batch in the in-flight ledger right after claiming it.
        ledger_key = f"{LEDGER_PREFIX}:{project.id}:{noop}"
        while not client.exists(ledger_key) and not _completed(store, project.id, complete):
            if time.monotonic() > end:
                raise TimeoutError(f"the producer claimed nothing in {timeout}s; logs in {tmp}")
            time.sleep(0.005)
        cpu.start()
        start, started_at = time.perf_counter(), time.time()
        timeline: list[list[float]] = []
        done, annoflow_s, counted_at = 0, 0.0, 0.0
        while not annoflow_s:
            if time.monotonic() > end:
                raise TimeoutError(f"annoflow finished {done} of {tasks} tasks in {timeout}s; logs in {tmp}")
            # Counting the tasks in Complete costs the database CPU the pipeline wants (with no vacuum
            # yet, every counted row is a heap visit: 300,000 rows take a fifth of a second), so the
            # clock follows the applier's counter of applied tasks (one Redis read, a fraction of a
            # second behind the commits). Once it says all are applied, one count in the store
            # confirms it, and the run ends when the applier last applied results (its counter's
            # flush trails that by up to half a second); the count's CPU is left out of the run's.
            # Every two seconds short of that (a counter that stalls), the store is counted too.
            near = tasks - done < tasks // 20
            time.sleep(0.05 if near else 0.25)
            done = _applied(client) - applied_before
            at = time.perf_counter() - start
            if done >= tasks or (near and at - counted_at >= 2.0):
                counted_at = at
                cpu.pause()  # the count is the benchmark's check, not the pipeline's work
                done = _completed(store, project.id, complete)
                if done >= tasks:
                    annoflow_s = _last_applied(client, started_at) or at
                else:
                    cpu.start()
            if len(timeline) % 8 == 0:  # about every two seconds: server processes that end keep their share
                cpu.sample()
            timeline.append([round(at, 1), done, round(rss_mb(producer.pid), 1), round(rss_mb(applier.pid), 1)])
        annoflow_cpu = cpu.stop()
        for proc in (applier, producer):  # idle, they would still poll: out of the second half's way
            stop(proc)
        baseline_cpu.start()
        after_s = _baseline(app, client, n_baseline - n_before, timeout)
        baseline_cpu.pause()
    finally:
        for proc in reversed(procs):
            stop(proc)
        store.close()
        if own_store:
            # A million tasks leave a 1.6 GB SQLite file; the logs stay for a look.
            for path in tmp.glob("bench.db*"):
                path.unlink()
    annoflow_rate = tasks / annoflow_s
    baseline_s = before_s + after_s
    baseline_rate = n_baseline / baseline_s
    return {
        "tasks": tasks,
        "batch_size": batch_size,
        "max_in_flight": in_flight,
        "workers": workers,
        "broker": broker_url,
        "store": store_url.split("://")[0].split("+")[0],
        "annoflow_seconds": round(annoflow_s, 4),
        "celery_baseline_tasks": n_baseline,
        "celery_baseline_seconds": round(baseline_s, 3),
        "annoflow_tasks_per_s": round(annoflow_rate, 1),
        "celery_baseline_tasks_per_s": round(baseline_rate, 1),
        # Each half on its own: how far the machine's speed moved during the run.
        "celery_baseline_before_after_tasks_per_s": [
            round(n_before / before_s, 1),
            round((n_baseline - n_before) / after_s, 1),
        ],
        "ratio": round(annoflow_rate / baseline_rate, 3),
        "producer_max_rss_mb": max((p[2] for p in timeline), default=0.0),
        "applier_max_rss_mb": max((p[3] for p in timeline), default=0.0),
        "annoflow_cpu_s": annoflow_cpu,
        "annoflow_cpu_us_per_task": {name: round(s * 1e6 / tasks, 1) for name, s in annoflow_cpu.items()},
        "celery_baseline_cpu_s": baseline_cpu.total(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rss_timeline": {"columns": ["s", "tasks_done", "producer_mb", "applier_mb"], "points": thin(timeline)},
        "logs": str(tmp),
    }
