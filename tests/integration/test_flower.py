"""Flower watches annoflow: real Flower with basic auth, real workers, a job, Flower's HTTP API.

The test takes a free Redis database (flushed before and after); the store is a
SQLite file in the test's temp folder.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.store import Store
from tests.integration.pipeline_env import ROOT, Pipeline, pipeline_for, run_in_thread, wait_until
from tests.servers import free_port, require_redis

pytestmark = pytest.mark.integration

AUTH = ("ops", "flower-test-secret")


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[Pipeline]:
    require_redis()
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with pipeline_for(store, tmp_path, [f"item-{i}" for i in range(12)]) as p:
            yield p
    finally:
        store.close()


def start_flower(pipe: Pipeline, port: int) -> subprocess.Popen[bytes]:
    log = open(pipe.tmp / "flower.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "--broker",
            pipe.redis_url,
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
            f"--basic-auth={AUTH[0]}:{AUTH[1]}",
        ],
        cwd=ROOT,
        env=pipe.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pipe.procs.append(proc)
    return proc


def test_flower_lists_workers_and_annoflow_tasks_behind_basic_auth(pipe: Pipeline) -> None:
    # Given Flower with basic auth on its own Redis database, and an annoflow worker
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start_flower(pipe, port)
    pipe.start_worker(concurrency=1)

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, f"Flower to answer; logs:\n{pipe.logs()}")

    def workers() -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{base}/api/workers", params={"refresh": 1}, auth=AUTH, timeout=10).json()
        return answer

    wait_until(lambda: any(name.startswith("annoflow-") for name in workers()), 30, "the worker to be listed")

    # When a job of 12 tasks runs through the worker in batches of 4
    applier = pipe.applier(num_retries=1)
    applying = run_in_thread(applier.run)
    stats = pipe.producer(batch_size=4, max_in_flight=2).run()
    wait_until(lambda: applier.stats.applied >= 12, 30, f"12 applied results; logs:\n{pipe.logs()}")
    applier.stop.set()
    applying.join(5)

    # Then Flower lists the worker and shows each batch under its readable task name, succeeded
    assert stats.total_tasks == 12
    listed = workers()
    node = next(name for name in listed if name.startswith("annoflow-"))
    assert "annoflow.stage.pipe.sort" in listed[node]["registered"]

    def tasks() -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{base}/api/tasks", auth=AUTH, timeout=5).json()
        return answer

    wait_until(lambda: sum(t["state"] == "SUCCESS" for t in tasks().values()) >= 3, 15, "3 succeeded tasks in Flower")
    seen = tasks()
    assert {t["name"] for t in seen.values()} == {"annoflow.stage.pipe.sort"}
    assert [t["state"] for t in seen.values()] == ["SUCCESS"] * 3
    assert all(t["worker"] == node for t in seen.values())
    # Each batch's arguments read as a summary, not as a hundred specs
    assert all(re.fullmatch(r"\[batch [0-9a-f]{32}: 4 tasks of stage 'Sort'\]", t["args"]) for t in seen.values())

    # And a request without credentials (or with wrong ones) is refused
    assert httpx.get(f"{base}/api/workers", timeout=5).status_code == 401
    assert httpx.get(f"{base}/api/tasks", auth=(AUTH[0], "wrong"), timeout=5).status_code == 401
