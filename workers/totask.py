"""The ToTask worker: Celery tasks that run the file and inference strategies on batches of specs.

Two tasks, one per queue, so model workers can consume only inference::

    annoflow.totask.file        on totask.file
    annoflow.totask.inference   on totask.inference

Each pool process keeps one ``FileStrategy`` and one ``InferenceStrategy`` (sharing one
pooled downloader), made after fork (``worker_process_init``), so connections, thread
pools and models are never shared across processes. A batch is always answered: one
``TaskCompletionResult`` per spec, failures included, on the run's results queue.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from common.celery_app import PipelineSettings, make_celery_app, publish_json, run_worker
from common.models import TaskCompletionResult, TaskSpec
from common.settings import Settings
from common.totask.download import DownloadSettings, Fetcher
from common.totask.queues import QUEUES, TASK_NAMES, TotaskHeader
from common.totask.strategies import FileStrategy, InferenceStrategy, run_batch
from common.totask.strategies.base import failure, now

__all__ = ["register_totask_tasks", "run_totask_batch", "start_totask_worker"]

log = logging.getLogger("annoflow.worker.totask")

# This process's strategies (a pool child, or the worker itself with the solo pool).
_strategies: dict[int, tuple[FileStrategy, InferenceStrategy]] = {}


def _strategies_for(download: DownloadSettings) -> tuple[FileStrategy, InferenceStrategy]:
    pid = os.getpid()
    if pid not in _strategies:
        _strategies.clear()  # a forked child drops its parent's
        fetcher = Fetcher(download)
        _strategies[pid] = (FileStrategy(fetcher), InferenceStrategy(fetcher))
        log.info("process %s made its ToTask strategies", pid)
    return _strategies[pid]


def run_totask_batch(raw_specs: Sequence[str], download: DownloadSettings) -> list[TaskCompletionResult]:
    """Run one batch of spec JSON through the strategies; one result per spec, in order.

    A spec that does not parse cannot be answered (no task id); it is logged and left
    to its lease, which expires and is reported by the run.
    """
    file, inference = _strategies_for(download)
    specs: list[TaskSpec] = []
    for raw in raw_specs:
        try:
            specs.append(TaskSpec.model_validate_json(raw))
        except ValueError as e:
            log.error("dropping a message that is not a task spec: %s", e)
    started = now()
    try:
        results = run_batch(specs, file, inference)
    except SoftTimeLimitExceeded:
        results = [
            failure(
                s, "the batch ran past the soft time limit; lower batch_size or raise ANNOFLOW_SOFT_TIME_LIMIT", started
            )
            for s in specs
        ]
    except Exception as e:  # a strategy bug must not leave its tasks unanswered
        log.exception("ToTask batch failed as a whole")
        results = [failure(s, f"{type(e).__name__}: {e}", started) for s in specs]
    return results


def _publish(app: Celery, header: TotaskHeader, results: list[TaskCompletionResult], worker: str) -> None:
    # Joined from each model's JSON: no parse-and-dump round trip of the whole message.
    body = (
        '{"header":'
        + header.model_dump_json()
        + ',"worker":'
        + json.dumps(worker)
        + ',"results":['
        + ",".join(r.model_dump_json() for r in results)
        + "]}"
    )
    publish_json(app, body, header.reply_to)


def register_totask_tasks(app: Celery, download: DownloadSettings) -> list[str]:
    """Register ``annoflow.totask.file`` and ``annoflow.totask.inference`` on ``app``; return their names.

    Both run the same code (the spec's ``params.method`` picks the strategy); two names
    and two queues let a deployment give inference its own (GPU) workers.
    """
    names = []
    for method, name in TASK_NAMES.items():

        def task(header: dict[str, Any], specs: list[str]) -> int:
            head = TotaskHeader.model_validate(header)
            worker = f"{socket.gethostname()}:{os.getpid()}"
            results = run_totask_batch(specs, download)
            _publish(app, head, results, worker)
            return len(results)

        # Celery builds a signature checker from the function's name: keep it an identifier.
        task.__name__ = task.__qualname__ = f"totask_{method}"
        app.task(name=name, acks_late=True, reject_on_worker_lost=True)(task)
        names.append(name)

    def _make_in_child(**_: Any) -> None:
        _strategies_for(download)

    worker_process_init.connect(_make_in_child, weak=False)
    return names


def start_totask_worker(
    settings: Settings,
    pipeline: PipelineSettings,
    *,
    methods: Sequence[str] = ("file", "inference"),
    concurrency: int = 2,
    pool: str = "prefork",
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> None:
    """Run a ToTask worker until it is stopped (SIGTERM: finish the running batches, then exit).

    Args:
        settings: where the broker is, and ANNOFLOW_FILE_ROOTS (the worker never opens the store).
        pipeline: time limits and broker tuning.
        methods: consume these methods' queues (``file``, ``inference`` or both).
        concurrency: pool processes, each running one batch at a time.
        pool: Celery pool (``prefork``; ``solo`` for debugging).
        loglevel: worker log level.
        hostname: the worker's node name (default ``totask-<pid>@<host>``).
    """
    app = make_celery_app(settings, pipeline)
    download = DownloadSettings(allowed_roots=settings.file_root_paths)
    names = register_totask_tasks(app, download)
    queues = [QUEUES[m] for m in methods]
    log.info("ToTask worker: tasks %s on queues %s", ", ".join(names), ", ".join(queues))
    node = hostname or f"totask-{os.getpid()}@{socket.gethostname()}"
    run_worker(app, queues, concurrency=concurrency, pool=pool, loglevel=loglevel, hostname=node)
