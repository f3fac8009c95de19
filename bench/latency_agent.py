"""The latency benchmark's handler: notes when it started (the time, in a file named after the task)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from common.models import TaskSpec
from common.runner import QueueRunner

runner = QueueRunner(project="latency")  # the queues' name; the store's project is a fresh one each run


@runner.stage("Check")
def check(spec: TaskSpec) -> str:
    started = time.time()
    folder = os.environ.get("ANNOFLOW_BENCH_LATENCY_DIR")
    if folder:
        Path(folder, str(spec.uuid)).write_text(repr(started))
    return "done"
