"""The producer's Prometheus ``/metrics``: what Flower cannot show.

Two kinds of numbers:

* Read at scrape time from the store and the broker (one
  :func:`producer.observe.status.collect_status` snapshot, the same one ``annoflow
  status`` shows): queue depth per queue, tasks per project/stage/status, live
  leases, events of the last minute, active runs' progress and metrics; and
  the result applier's counters and apply-latency histogram, which the applier
  keeps in Redis (:mod:`producer.apply.stats`).
* Observed in this process: the enumerate latency (claim + build specs +
  publish, per stage fill) and the tasks published.

A scrape that cannot reach the store or the broker still answers, with
``annoflow_store_up 0`` / ``annoflow_broker_up 0``, so an alert can fire on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from common.celery_app import broker_url
from common.errors import InvalidInputError
from common.settings import Settings
from common.store import Store
from producer.apply.stats import APPLY_BUCKETS, MemoryApplyStats, RedisApplyStats, make_apply_stats
from producer.observe.queue_depth import QueueReader, make_queue_reader
from producer.observe.status import collect_status

__all__ = ["ENUMERATE_BUCKETS", "PipelineMetrics", "SnapshotCollector", "start_producer_metrics"]

log = logging.getLogger("annoflow.metrics")

# Seconds for one fill of a stage: one claim statement, two spec queries, the publishes.
ENUMERATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SnapshotCollector(Collector):
    """Builds the store and broker gauges and the applier's counters at each scrape."""

    def __init__(
        self,
        store: Store,
        reader: QueueReader | None,
        apply_stats: MemoryApplyStats | RedisApplyStats | None,
        project: str | None = None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.apply_stats = apply_stats
        self.project = project
        # The HTTP server may serve two scrapes at once; the store reads need not overlap.
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._snapshot_metrics()
            yield from self._apply_metrics()

    def _snapshot_metrics(self) -> Iterator[Metric]:
        store_up = GaugeMetricFamily("annoflow_store_up", "1 when the store answered this scrape")
        try:
            snap = collect_status(self.store, self.reader, project=self.project, failing_limit=0)
        except Exception as e:  # report the outage as a number instead of failing the scrape
            log.warning("metrics: store unreadable: %s", e)
            store_up.add_metric([], 0)
            yield store_up
            return
        store_up.add_metric([], 1)
        yield store_up
        broker_up = GaugeMetricFamily("annoflow_broker_up", "1 when the broker answered this scrape")
        broker_up.add_metric([], 0 if snap.broker_error else 1)
        yield broker_up
        depth = GaugeMetricFamily("annoflow_queue_depth", "Messages waiting in a queue", labels=["queue"])
        for queue, n in sorted(snap.queues.items()):
            depth.add_metric([queue], n)
        yield depth
        yield GaugeMetricFamily(
            "annoflow_queue_unacked", "Messages delivered to workers and not acknowledged yet", value=snap.unacked
        )
        task_gauge = GaugeMetricFamily(
            "annoflow_tasks", "Tasks per project, stage and status", labels=["project", "stage", "status"]
        )
        leases = GaugeMetricFamily(
            "annoflow_live_leases",
            "Tasks a worker holds right now (claimed, lease not expired)",
            labels=["project", "stage"],
        )
        for stage in snap.stages:
            for status, n in sorted(stage.counts.items()):
                task_gauge.add_metric([stage.project, stage.title, status], n)
            leases.add_metric([stage.project, stage.title], stage.live_leases)
        yield task_gauge
        yield leases
        recent = GaugeMetricFamily(
            "annoflow_events_last_minute", "Task events (transitions) recorded in the last 60 s", labels=["project"]
        )
        for t in snap.throughput:
            recent.add_metric([t.project], t.events)
        yield recent
        progress = GaugeMetricFamily(
            "annoflow_run_progress", "Progress (0..1) of a running run", labels=["run", "run_name", "kind", "project"]
        )
        metric = GaugeMetricFamily(
            "annoflow_run_metric", "A numeric metric of a running run", labels=["run", "run_name", "metric"]
        )
        for run in snap.runs:
            progress.add_metric([run.id, run.name, run.kind, run.project or ""], run.progress)
            for key, value in sorted(run.metrics.items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metric.add_metric([run.id, run.name, key], float(value))
        yield progress
        yield metric

    def _apply_metrics(self) -> Iterator[Metric]:
        if self.apply_stats is None:
            return
        try:
            totals = self.apply_stats.read()
        except Exception as e:  # Redis down: the broker gauge already says so
            log.warning("metrics: applier counters unreadable: %s", e)
            return
        c = totals.counts
        results = CounterMetricFamily(
            "annoflow_results", "Task results handled by the result applier, by outcome", labels=["outcome"]
        )
        for outcome in ("applied", "stale", "retried", "failed"):
            results.add_metric([outcome], c[outcome])
        yield results
        yield CounterMetricFamily(
            "annoflow_result_messages", "Results messages the applier consumed", value=c["messages"]
        )
        yield CounterMetricFamily(
            "annoflow_dead_letters", "Results messages sent to the dead-letter queue", value=c["dead_letters"]
        )
        buckets = [(repr(le), totals.buckets[le]) for le in APPLY_BUCKETS]
        buckets.append(("+Inf", totals.seconds_count))
        hist = HistogramMetricFamily("annoflow_apply_seconds", "Seconds to apply one results message (one transaction)")
        hist.add_metric([], buckets, sum_value=totals.seconds_sum)
        yield hist


class PipelineMetrics:
    """The producer's registry: the scrape-time collector plus what this process observes.

    Args:
        store: the store to read.
        reader: the broker's queue reader (None: no queue gauges).
        apply_stats: where the applier keeps its counters (None: no applier metrics).
        project: only this project's stages and runs (default: every project).
    """

    def __init__(
        self,
        store: Store,
        reader: QueueReader | None,
        apply_stats: MemoryApplyStats | RedisApplyStats | None,
        project: str | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.enumerate_seconds = Histogram(
            "annoflow_enumerate_seconds",
            "Seconds to claim, build and publish one fill of a stage queue",
            ["project", "stage"],
            buckets=ENUMERATE_BUCKETS,
            registry=self.registry,
        )
        self.published = Counter(
            "annoflow_tasks_published", "Tasks published to a stage queue", ["project", "stage"], registry=self.registry
        )
        self.registry.register(SnapshotCollector(store, reader, apply_stats, project))

    def enumerated(self, project: str, stage: str, tasks: int, seconds: float) -> None:
        """Record one fill of a stage queue (the producer's observer hook)."""
        self.enumerate_seconds.labels(project, stage).observe(seconds)
        self.published.labels(project, stage).inc(tasks)

    def serve(self, port: int, addr: str = "0.0.0.0") -> WSGIServer:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; return the server (``shutdown()`` stops it).

        Raises:
            OSError: the port is taken.
        """
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", addr, server.server_port)
        return server


def start_producer_metrics(
    settings: Settings, store: Store, queues: list[str], port: int, addr: str = "0.0.0.0"
) -> PipelineMetrics | None:
    """Serve the producer's ``/metrics`` on ``port`` (0: no server, no observer).

    Raises:
        InvalidInputError: the port is taken.
    """
    if not port:
        return None
    url = broker_url(settings)
    metrics = PipelineMetrics(store, make_queue_reader(url, settings.home, queues), make_apply_stats(url))
    try:
        metrics.serve(port, addr)
    except OSError as e:
        raise InvalidInputError(
            f"cannot serve /metrics on {addr}:{port}: {e}; "
            "pick a free port with --metrics-port or ANNOFLOW_METRICS_PORT"
        ) from e
    return metrics
