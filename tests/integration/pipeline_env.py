"""Shared pieces of the queue-pipeline integration tests: a Redis DB, a store, real workers.

Each test gets its own Redis database (flushed before and after) and its own
store (a PostgreSQL schema, or a SQLite file); the workers are real
``annoflow worker`` processes started with short time limits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from common.celery_app import PipelineSettings, make_celery_app, transport_options
from common.loader import load_runner
from common.settings import Settings
from common.store import ProjectRecord, Store
from common.workflow import load_workflow
from producer.apply.applier import ResultApplier
from producer.enumerate.inflight import make_ledger
from producer.enumerate.plan import plan_stages
from producer.enumerate.produce import Producer
from tests.helpers import make_units

ROOT = Path(__file__).resolve().parents[2]
AGENTS = "tests.integration.pipeline_agents:runner"
WORKFLOW = ROOT / "tests" / "fixtures" / "queue_pipeline.yaml"
REDIS_DBS = range(5, 10)
# Short limits so a hanging handler or a lost batch resolves within seconds.
PIPELINE_ENV = {
    "ANNOFLOW_SOFT_TIME_LIMIT": "1",
    "ANNOFLOW_HARD_TIME_LIMIT": "3",
    "ANNOFLOW_VISIBILITY_TIMEOUT": "6",
}


def _alive(owner: bytes | None) -> bool:
    try:
        os.kill(int((owner or b"0").decode()), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def free_redis_db() -> int:
    """A Redis database number in 5-9 that holds no keys (the tests' range), held by this test process.

    Test processes running side by side (pytest -n) each claim theirs with SET NX in database 0; a claim
    outlives its process by at most its expiry, and one whose process has gone is taken over at once.
    """
    me = str(os.getpid()).encode()
    claims = redis.Redis(db=0)
    for db in REDIS_DBS:
        key = f"annoflow:test:redis-db:{db}"
        owner = claims.get(key)
        if owner not in (None, me) and _alive(owner):
            continue
        if owner is None and not claims.set(key, me, nx=True, ex=1800):
            continue  # another process claimed it just now
        if owner not in (None, me):
            claims.set(key, me, ex=1800)
        if redis.Redis(db=db).dbsize() == 0:
            return db
    raise RuntimeError("Redis databases 5-9 are all in use; flush them (redis-cli -n N flushdb)")


@dataclass
class Pipeline:
    """One test's pipeline: broker, store, project, and the processes it started."""

    redis_url: str
    store: Store
    project: ProjectRecord
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    loops: list[Producer | ResultApplier] = field(default_factory=list)  # stopped when the test ends

    @property
    def settings(self) -> Settings:
        return Settings(broker_url=self.redis_url, home=self.tmp / "home")

    @property
    def pipeline(self) -> PipelineSettings:
        return PipelineSettings(soft_time_limit=1, hard_time_limit=3, visibility_timeout=6)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            **PIPELINE_ENV,
            "ANNOFLOW_BROKER_URL": self.redis_url,
            "ANNOFLOW_HOME": str(self.tmp / "home"),
            "ANNOFLOW_TEST_FIXED": str(self.tmp / "fixed"),
            "ANNOFLOW_TEST_RUNNING": str(self.tmp / "running"),
            "PYTHONPATH": str(ROOT),
            **extra,
        }

    def start(self, *args: str, env: dict[str, str] | None = None, log: str = "proc") -> subprocess.Popen[bytes]:
        """Start ``annoflow ARGS`` as a child process in its own process group."""
        out = open(self.tmp / f"{log}-{len(self.procs)}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env=env or self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", "--agents", AGENTS, "--concurrency", str(concurrency), "--loglevel", "WARNING", log="worker"
        )

    def producer(self, **kw: object) -> Producer:
        runner = load_runner(AGENTS)
        plans = plan_stages(runner, self.store.workflow(self.project.id), self.project.name)
        producer = Producer(
            self.store,
            make_celery_app(self.settings, self.pipeline),
            make_ledger(self.redis_url, self.tmp, self.store),
            self.project,
            plans,
            **kw,  # type: ignore[arg-type]
        )
        self.loops.append(producer)
        return producer

    def applier(self, **kw: object) -> ResultApplier:
        applier = ResultApplier(
            self.store,
            self.redis_url,
            transport_options(self.settings, self.pipeline),
            make_ledger(self.redis_url, self.tmp, self.store),
            **kw,  # type: ignore[arg-type]
        )
        self.loops.append(applier)
        return applier

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("*.log")))


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process and all its children (a Celery worker and its pool)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def schema_of(store: Store) -> str:
    """The PostgreSQL schema a store works in: what a child process's PGOPTIONS search_path must name."""
    with store.read() as conn:
        return str(conn.exec_driver_sql("select current_schema()").scalar())


def a_task_just_started(pipe: Pipeline, within_s: float = 0.1) -> bool:
    """A ``slow-*`` task began its 0.2 s sleep in a worker less than ``within_s`` ago: its batch is mid-run."""
    try:
        ages = [time.time() - p.stat().st_mtime for p in (pipe.tmp / "running").iterdir()]
    except FileNotFoundError:  # no task has started yet, or the one seen has just finished
        return False
    return any(age < within_s for age in ages)


@contextmanager
def pipeline_for(store: Store, tmp: Path, titles: list[str]) -> Iterator[Pipeline]:
    """A project of ``titles`` in ``store`` and a fresh Redis DB; stops every process and flushes after."""
    db = free_redis_db()
    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis(db=db)
    client.flushdb()
    project = store.create_project("pipe", load_workflow(WORKFLOW))
    store.add_data_units(project.id, store.dataset(project.id, "items"), make_units(titles))
    pipe = Pipeline(url, store, project, tmp)
    started = len(_THREADS)
    try:
        yield pipe
    finally:
        for proc in pipe.procs:
            kill_group(proc, signal.SIGKILL)
        # A producer or applier still running would take messages of the next test
        # that gets this database number: stop them and wait before handing it back.
        for loop in pipe.loops:
            loop.stop.set()
        for thread in _THREADS[started:]:
            thread.join(15)
        del _THREADS[started:]
        client.flushdb()


_THREADS: list[threading.Thread] = []  # started by run_in_thread, joined by pipeline_for


def run_in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    _THREADS.append(thread)
    return thread


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
