"""The producer's /metrics during a run: real producer, applier and worker processes on Redis.

The test takes a free Redis database (flushed before and after); the store is a
SQLite file that the three processes share.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.store import Store
from tests.integration.pipeline_env import AGENTS, Pipeline, pipeline_for, wait_until
from tests.servers import free_port, require_redis

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[Pipeline]:
    require_redis()
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with pipeline_for(store, tmp_path, [f"item-{i}" for i in range(12)] + ["hang-0"]) as p:
            yield p
    finally:
        store.close()


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_as_the_run_goes(pipe: Pipeline) -> None:
    # Given 13 tasks (one hangs past the soft time limit) and a producer serving /metrics, no worker yet
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = pipe.env(ANNOFLOW_STORE_URL=f"sqlite:///{pipe.tmp / 'store.db'}")
    run = pipe.store.create_run(pipe.project.id, "totask", "prelabel", {})
    pipe.store.update_run(run.id, metrics={"total": 10, "success": 2, "failed": 0})
    produce_args = ["produce", "--project", "pipe", "--agents", AGENTS, "--refresh-every", "0.5"]
    limits = ["--task-batch-size", "4", "--max-in-flight", "2", "--metrics-port", str(port)]
    pipe.start(*produce_args, *limits, env=env, log="producer")

    def reachable() -> bool:
        try:
            return value(scrape(url), "annoflow_store_up") == 1
        except httpx.HTTPError:
            return False

    wait_until(reachable, 30, f"/metrics to answer; logs:\n{pipe.logs()}")
    queue = "annoflow.pipe.sort"
    wait_until(lambda: value(scrape(url), "annoflow_queue_depth", queue=queue) == 2, 15, "2 batches waiting")

    # When nothing consumes yet, Then the backlog, the leases and the run's progress show
    before = scrape(url)
    assert value(before, "annoflow_tasks", project="pipe", stage="Sort", status="NEW") == 13
    assert value(before, "annoflow_live_leases", project="pipe", stage="Sort") == 8
    assert value(before, "annoflow_tasks_published_total", project="pipe", stage="Sort") == 8
    assert value(before, "annoflow_enumerate_seconds_count", project="pipe", stage="Sort") == 1
    assert value(before, "annoflow_results_total", outcome="applied") == 0
    assert value(before, "annoflow_broker_up") == 1
    labels = {"run": run.id, "run_name": "prelabel", "kind": "totask", "project": "pipe"}
    assert value(before, "annoflow_run_progress", **labels) == pytest.approx(0.2)

    # When a worker and the applier (no retries) start, and the run records more progress
    pipe.start_worker(concurrency=2)
    pipe.start("apply", "--num-retries", "0", env=env, log="applier")
    pipe.store.update_run(run.id, metrics={"total": 10, "success": 9, "failed": 1})

    def finished() -> bool:
        s = scrape(url)
        return (
            value(s, "annoflow_results_total", outcome="applied") + value(s, "annoflow_results_total", outcome="failed")
            >= 13
        )

    wait_until(finished, 40, f"13 results applied; logs:\n{pipe.logs()}")

    # Then the numbers moved: tasks left the stage, queues drained, leases released, latencies observed
    after = scrape(url)
    assert value(after, "annoflow_tasks", project="pipe", stage="Complete", status="COMPLETED") == 12
    assert value(after, "annoflow_tasks", project="pipe", stage="Sort", status="NEW") == 1  # the hung one, failed
    assert value(after, "annoflow_results_total", outcome="applied") == 12
    assert value(after, "annoflow_results_total", outcome="failed") == 1
    assert value(after, "annoflow_results_total", outcome="stale") == 0
    assert value(after, "annoflow_queue_depth", queue=queue) == 0
    assert value(after, "annoflow_live_leases", project="pipe", stage="Sort") == 0
    assert value(after, "annoflow_tasks_published_total", project="pipe", stage="Sort") == 13
    messages = value(after, "annoflow_result_messages_total")
    assert messages >= 4  # 13 tasks in batches of at most 4
    assert value(after, "annoflow_apply_seconds_count") == messages
    assert value(after, "annoflow_apply_seconds_bucket", le="+Inf") == messages
    assert value(after, "annoflow_apply_seconds_sum") > 0
    assert value(after, "annoflow_enumerate_seconds_count", project="pipe", stage="Sort") >= 2  # one fill per room
    assert value(after, "annoflow_events_last_minute", project="pipe") == 12
    assert value(after, "annoflow_run_progress", **labels) == pytest.approx(1.0)
    assert value(after, "annoflow_run_metric", run=run.id, run_name="prelabel", metric="failed") == 1
