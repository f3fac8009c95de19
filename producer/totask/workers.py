"""Local ToTask worker processes for one run: ``annoflow totask worker`` children, started and stopped.

A run with ``workers > 0`` starts them itself (the embedded default needs no servers);
with ``workers = 0`` it relies on workers already consuming the queues.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from common.celery_app import PipelineSettings
from common.settings import Settings

__all__ = ["spawn_totask_worker", "stop_worker"]


def spawn_totask_worker(
    settings: Settings,
    pipeline: PipelineSettings,
    method: str,
    concurrency: int,
    log_path: Path,
    tmp_dir: Path,
    loglevel: str = "WARNING",
) -> subprocess.Popen[bytes]:
    """Start ``annoflow totask worker`` for one method's queue, in its own process group.

    The child gets this process's settings (not its environment's), and ``TMPDIR`` set
    to the run's scratch folder, so whatever a plugin writes there goes with the run.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), *[p for p in sys.path if p]]),
        "ANNOFLOW_HOME": str(Path(settings.home).resolve()),
        "ANNOFLOW_BROKER_URL": settings.broker_url,
        "ANNOFLOW_FILE_ROOTS": settings.file_roots,
        "ANNOFLOW_SOFT_TIME_LIMIT": str(pipeline.soft_time_limit),
        "ANNOFLOW_HARD_TIME_LIMIT": str(pipeline.hard_time_limit),
        "ANNOFLOW_VISIBILITY_TIMEOUT": str(pipeline.visibility_timeout),
        "ANNOFLOW_POLLING_INTERVAL": str(pipeline.polling_interval),
        "TMPDIR": str(tmp_dir),
    }
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "totask",
        "worker",
        "--methods",
        method,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
    ]
    with open(log_path, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_worker(proc: subprocess.Popen[bytes], *, idle: bool, grace_s: float | None = None) -> None:
    """Stop a worker and its pool: at once when idle (SIGQUIT), else let batches finish (SIGTERM).

    The whole process group is killed after ``grace_s`` (default 8 s idle, 30 s busy):
    Celery's own shutdown of an idle worker takes several seconds, and what an idle
    run's worker holds is already answered, so the wait is capped.
    """
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGQUIT if idle else signal.SIGTERM)
    try:
        proc.wait(grace_s if grace_s is not None else (8.0 if idle else 30.0))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
