"""Start a Celery worker for a runner module: probe the handlers, register the stage tasks, consume."""

from __future__ import annotations

import logging
import os
import socket

from common.celery_app import PipelineSettings, make_celery_app, run_worker, stage_queue_name
from common.errors import InvalidInputError
from common.gc_tuning import tune_gc
from common.loader import StageInfo, probe_runner
from common.settings import Settings
from workers.tasks import register_noop_task, register_stage_tasks

__all__ = ["start_worker"]

log = logging.getLogger("annoflow.worker")


def start_worker(
    settings: Settings,
    pipeline: PipelineSettings,
    ref: str,
    *,
    project: str | None = None,
    queues: list[str] | None = None,
    concurrency: int = 2,
    pool: str = "prefork",
    loglevel: str = "INFO",
    hostname: str | None = None,
    bench_counter_url: str | None = None,
    stage_keys: list[str] | None = None,
) -> None:
    """Run a worker until it is stopped (SIGTERM: finish the running batches, then exit).

    Args:
        settings: where the broker is (the worker never opens the store).
        pipeline: time limits and broker tuning.
        ref: the runner, ``package.module:runner``.
        project: the project name the queues are named after (default: the runner's).
        queues: consume only these queues (default: one per agent stage of the runner).
        concurrency: pool processes, each running one batch at a time.
        pool: Celery pool (``prefork``; ``solo`` for debugging).
        loglevel: worker log level.
        hostname: the worker's node name (default ``annoflow-<pid>@<host>``).
        bench_counter_url: also register the benchmark's no-op task (Redis URL for its counter).
        stage_keys: the runner's stage keys when the caller already imported it (``annoflow run``):
            skips the probe; the children still import the module after fork.

    Raises:
        InvalidInputError: the module does not import, registers no stage, or names no project.
    """
    if stage_keys:
        runner_project, stages = project, [StageInfo(k, False) for k in stage_keys]
    else:
        runner_project, stages = probe_runner(ref)
    project = project or runner_project
    if not project:
        raise InvalidInputError(
            f'{ref} does not name its project; create it with QueueRunner(project="NAME") or pass --project NAME'
        )
    app = make_celery_app(settings, pipeline)
    names = register_stage_tasks(app, project, stages, ref)
    if bench_counter_url:
        register_noop_task(app, bench_counter_url)
    wanted = queues or [stage_queue_name(project, s.stage_key) for s in stages]
    log.info("worker for %s: tasks %s on queues %s", ref, ", ".join(names), ", ".join(wanted))
    node = hostname or f"annoflow-{os.getpid()}@{socket.gethostname()}"
    tune_gc()  # before the pool forks: the children inherit the frozen heap and share its pages
    run_worker(app, wanted, concurrency=concurrency, pool=pool, loglevel=loglevel, hostname=node)
