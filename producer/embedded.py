"""``annoflow run``: producer, result applier and real Celery worker processes, in one command.

The producer and the applier run as threads of this process; the workers are
one ``annoflow worker`` child process with a prefork pool of ``workers``
processes. With no ANNOFLOW_* servers configured everything is embedded: the
SQLite store and the filesystem broker under ``./.annoflow/``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from common.batches import ResultBatch
from common.celery_app import PipelineSettings, broker_url, make_celery_app, transport_options
from common.errors import TransientError
from common.loader import load_runner
from common.settings import Settings
from common.store import ProjectRecord, Store
from producer.apply.applier import ResultApplier
from producer.apply.stats import ApplierStats
from producer.enumerate.inflight import make_ledger
from producer.enumerate.plan import plan_stages
from producer.enumerate.produce import Producer, ProduceStats
from producer.lineage import AgentRun

__all__ = ["EmbeddedOptions", "RunSummary", "run_embedded", "spawn_worker"]

log = logging.getLogger("annoflow.run")


@dataclass(frozen=True)
class EmbeddedOptions:
    """The knobs of ``annoflow run`` (the producer's and the applier's, plus the worker count)."""

    workers: int = 2
    batch_size: int = 100
    max_in_flight: int = 8
    refresh_every: float | None = None
    num_retries: int = 3
    backoff_s: float = 1.0
    lease_seconds: float = 600.0
    max_tasks_per_stage: int | None = None
    worker_loglevel: str = "WARNING"


@dataclass
class RunSummary:
    """What one ``annoflow run`` did."""

    produced: ProduceStats
    applied: ApplierStats
    seconds: float
    worker_log: Path
    done_by_stage: dict[str, int] = field(default_factory=dict)


def spawn_worker(
    ref: str,
    project: str,
    concurrency: int,
    log_path: Path,
    loglevel: str = "WARNING",
    stage_keys: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``annoflow worker`` as a child process (its own process group), logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *[p for p in sys.path if p]])}
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "worker",
        "--agents",
        ref,
        "--project",
        project,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
    ]
    if stage_keys:
        cmd += ["--stage-keys", json.dumps(stage_keys)]
    with open(log_path, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0, *, idle: bool = False) -> None:
    """Stop a worker process and its pool; SIGKILL the group after ``grace_s``.

    ``idle`` (nothing in flight) stops it at once (SIGQUIT, Celery's cold shutdown): a warm
    shutdown of an idle worker still takes seconds. Otherwise SIGTERM lets running batches finish.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT if idle else signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def run_embedded(
    settings: Settings,
    pipeline: PipelineSettings,
    store: Store,
    project: ProjectRecord,
    ref: str,
    options: EmbeddedOptions,
    on_tick: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run the whole pipeline for ``project`` until its agent stages are drained (or SIGINT/SIGTERM).

    Raises:
        InvalidInputError: the runner module does not import or names a stage that is not an agent stage.
        TransientError: the worker process exited at start (its log says why).
    """
    runner = load_runner(ref)
    plans = plan_stages(runner, store.workflow(project.id), project.name)
    queue_project = getattr(runner, "project", None) or project.name
    app = make_celery_app(settings, pipeline)
    url = broker_url(settings)
    ledger = make_ledger(url, settings.home, store)
    producer = Producer(
        store,
        app,
        ledger,
        project,
        plans,
        batch_size=options.batch_size,
        max_in_flight=options.max_in_flight,
        refresh_every=options.refresh_every,
        lease_seconds=options.lease_seconds,
        max_tasks_per_stage=options.max_tasks_per_stage,
    )
    summary = RunSummary(producer.stats, ApplierStats(), 0.0, Path(settings.home) / "logs" / "worker.log")

    def count(batch: ResultBatch) -> None:
        stage = batch.header.stage_uuid
        summary.done_by_stage[stage] = summary.done_by_stage.get(stage, 0) + len(batch.results)

    agent_run = AgentRun(store, project, ref, {"command": "run", **asdict(options)})
    applier = ResultApplier(
        store,
        url,
        transport_options(settings, pipeline),
        ledger,
        num_retries=options.num_retries,
        backoff_s=options.backoff_s,
        hold_s=options.refresh_every or 0.0,
        on_applied=count,
        observer=agent_run.applied,  # the tasks it moved, for the run's lineage
    )
    summary.applied = applier.stats
    # The runner imported fine here, so the worker need not probe it again.
    keys = [p.stage_key for p in plans]
    worker = spawn_worker(ref, queue_project, options.workers, summary.worker_log, options.worker_loglevel, keys)
    threads = [
        threading.Thread(target=producer.run, name="producer", daemon=True),
        threading.Thread(target=applier.run, name="applier", daemon=True),
    ]
    previous = _on_stop_signals(producer.stop.set)
    started = time.monotonic()
    error: str | None = "interrupted"
    try:
        for t in threads:
            t.start()
        while threads[0].is_alive():
            if worker.poll() is not None:
                producer.stop.set()
                raise TransientError(
                    f"the worker process exited with code {worker.returncode}; see {summary.worker_log}"
                )
            summary.seconds = time.monotonic() - started
            if on_tick is not None:
                on_tick(summary)
            threads[0].join(0.2)
        # Drained (or stopped): let the applier take what is still on its way.
        end = time.monotonic() + 30
        while any(ledger.count(project.id, p.stage.uuid) for p in plans) and time.monotonic() < end:
            time.sleep(0.05)
        error = None
    except Exception as e:
        error = str(e)
        raise
    finally:
        applier.stop.set()
        threads[1].join(10)
        idle = not any(ledger.count(project.id, p.stage.uuid) for p in plans)
        stop_process(worker, idle=idle)
        _restore_signals(previous)
        _finish_run(agent_run, summary, error)
    summary.seconds = time.monotonic() - started
    if on_tick is not None:
        on_tick(summary)
    return summary


def _finish_run(run: AgentRun, summary: RunSummary, error: str | None) -> None:
    a = summary.applied
    metrics = {"total": summary.produced.total_tasks, "success": a.applied, "published": summary.produced.total_tasks}
    message = error or f"applied {a.applied} task result(s); {a.stale} stale, {a.failed} failed"
    try:
        run.finish("FAILED" if error else "SUCCEEDED", message, {**metrics, **a.as_dict()})
    except Exception as e:  # the store may be what failed; the session's own outcome must still surface
        log.warning("run %s: its end could not be recorded: %s", run.id, e)


def _on_stop_signals(handler: Callable[[], None]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(_sig: int, _frame: FrameType | None) -> None:
        handler()

    return {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)
