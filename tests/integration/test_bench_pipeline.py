"""``annoflow bench pipeline`` end to end on a small run: both measurements and the figures it names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.integration.pipeline_env import free_redis_db
from tests.servers import require_redis

pytestmark = pytest.mark.integration

ANNOFLOW = Path(sys.executable).parent / "annoflow"


def test_bench_pipeline_reports_both_runs(tmp_path: Path) -> None:
    # Given a Redis database of its own
    require_redis()
    db = free_redis_db()
    url = f"redis://127.0.0.1:6379/{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env |= {"ANNOFLOW_BROKER_URL": url, "ANNOFLOW_HOME": str(tmp_path / "home")}
    try:
        # When a small benchmark runs
        done = subprocess.run(
            [
                str(ANNOFLOW),
                "bench",
                "pipeline",
                "--tasks",
                "400",
                "--batch-size",
                "50",
                "--baseline-tasks",
                "60",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        redis.Redis(db=db).flushdb()

    # Then it prints the figures the issue names, for both runs, consistent with each other
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert (figures["tasks"], figures["batch_size"], figures["celery_baseline_tasks"]) == (400, 50, 60)
    rate, baseline = figures["annoflow_tasks_per_s"], figures["celery_baseline_tasks_per_s"]
    assert rate > 0 and baseline > 0
    assert figures["ratio"] == pytest.approx(rate / baseline, rel=0.01)
    assert figures["annoflow_tasks_per_s"] == pytest.approx(400 / figures["annoflow_seconds"], rel=0.01)
    # and where the CPU went, and the producer's and applier's memory over the run
    assert {"producer", "applier", "worker", "worker_children", "redis"} <= set(figures["annoflow_cpu_s"])
    assert figures["producer_max_rss_mb"] > 0 and figures["applier_max_rss_mb"] > 0
    points = figures["rss_timeline"]["points"]
    assert points and points[-1][1] == 400
