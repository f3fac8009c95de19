"""``annoflow bench latency`` end to end on a few submits: one JSON object per setup, every task timed."""

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


def test_bench_latency_times_each_setup(tmp_path: Path) -> None:
    # Given a Redis database of its own
    require_redis()
    db = free_redis_db()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOFLOW_")}
    env |= {"ANNOFLOW_BROKER_URL": f"redis://127.0.0.1:6379/{db}", "ANNOFLOW_HOME": str(tmp_path / "home")}
    try:
        # When the benchmark submits 3 tasks on each setup
        done = subprocess.run(
            [str(ANNOFLOW), "bench", "latency", "--samples", "3", "--pause", "0.2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr

        # Then each setup printed its percentiles for both spans, the handler before the next stage
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert [(r["setup"], r["store"], r["broker"]) for r in rows] == [
            ("redis", "sqlite", "redis"),
            ("embedded", "sqlite", "embedded"),
        ]
        for row in rows:
            assert row["samples"] == 3
            handler, stage = row["action_to_handler_ms"], row["action_to_next_stage_ms"]
            assert {"p50", "p95", "p99", "max"} <= set(handler)
            assert 0 < handler["p50"] <= stage["p50"]
    finally:
        redis.Redis(db=db).flushdb()


def test_an_unknown_setup_is_one_clear_line() -> None:
    done = subprocess.run(
        [str(ANNOFLOW), "bench", "latency", "--setups", "redis,kafka"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown kafka; use any of redis, embedded" in done.stdout + done.stderr
