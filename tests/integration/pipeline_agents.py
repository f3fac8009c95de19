"""Handlers the queue-pipeline tests run in real Celery worker processes.

What a handler does depends on the data unit's title, so one runner serves
every scenario: ``slow-*`` sleeps a little (so a kill lands mid-batch; with
ANNOFLOW_TEST_RUNNING set it marks each task in that folder while it sleeps),
``hang-*`` sleeps far past the soft time limit unless the file named by
ANNOFLOW_TEST_FIXED exists, ``skip-*`` goes to Archive, anything else to Complete.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common.runner import QueueRunner
from common.store.records import DataUnit

runner = QueueRunner(project="pipe")


@runner.stage("Sort")
def sort(unit: DataUnit) -> str:
    if unit.title.startswith("slow-"):
        running = os.environ.get("ANNOFLOW_TEST_RUNNING", "")
        marker = Path(running, unit.title) if running else None
        if marker is not None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        time.sleep(0.2)
        if marker is not None:
            marker.unlink()
    if unit.title.startswith("hang-"):
        fixed = os.environ.get("ANNOFLOW_TEST_FIXED", "")
        if not (fixed and Path(fixed).exists()):
            time.sleep(600)
    return "skip" if unit.title.startswith("skip-") else "done"
