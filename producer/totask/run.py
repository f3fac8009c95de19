"""The work phase of a ToTask run: publish batches, apply answers, watch, then finish or roll back.

See :mod:`producer.totask.action` for the whole run; this module is what happens once the
critical checks passed and the run is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from kombu.connection import Connection
from kombu.messaging import Consumer

from common.celery_app import (
    PipelineSettings,
    broker_transport,
    broker_url,
    make_celery_app,
    make_queue,
    transport_options,
)
from common.errors import AnnoflowError, TransientError
from common.settings import Settings
from common.specs import build_specs
from common.store import Store, TaskRecord
from common.store.totask_runs import (
    TaskFailure,
    claim_by_ids,
    drop_backup,
    release_leases,
    restore_labels,
    snapshot_labels,
)
from common.totask.params import ToTaskParams
from common.totask.preprocessors import PreProcessorRegistry
from common.totask.queues import QUEUES, TASK_NAMES, TotaskHeader, results_queue
from producer.lineage import RunLineage
from producer.totask.apply import InFlight, RunApplier
from producer.totask.checks import RunPlan
from producer.totask.workers import spawn_totask_worker, stop_worker

__all__ = ["Execution", "RunOwner", "RunStopped", "ToTaskOptions", "run_metrics"]

log = logging.getLogger("annoflow.totask")


class RunStopped(AnnoflowError):
    """A critical error after work started; the run is rolled back."""


@dataclass(frozen=True)
class ToTaskOptions:
    """How a run executes (not what it does: that is :class:`ToTaskParams`)."""

    workers: int = 2  # local worker processes to start; 0: use workers already running
    max_in_flight: int = 4  # unanswered batches at a time (backpressure)
    lease_seconds: float = 600.0
    ready_timeout: float = 180.0  # seconds to wait for the pre-processor to be ready
    stall_timeout: float = 300.0  # no answer for this long while batches are out: stop
    health_every: float = 5.0  # seconds between pre-processor health checks during the run
    metrics_every: float = 1.0  # seconds between metrics updates in the store
    worker_loglevel: str = "WARNING"


def run_metrics(total: int, success: int, failed: int, started: float) -> dict[str, Any]:
    done = success + failed
    return {
        "total": total,
        "success": success,
        "failed": failed,
        "stand_by": max(total - done, 0),
        "progress": round(100.0 * done / total, 1) if total else 100.0,
        "elapsed_s": round(time.monotonic() - started, 2),
    }


class RunOwner(Protocol):
    """What an execution reads from, and reports to, the run that started it (a ``ToTaskAction``)."""

    store: Store
    params: ToTaskParams
    options: ToTaskOptions
    settings: Settings
    pipeline: PipelineSettings
    registry: PreProcessorRegistry
    on_progress: Callable[[dict[str, Any]], None] | None
    metrics: dict[str, Any]
    stop_event: threading.Event
    stop_reason: str
    lineage: RunLineage

    def finish(self, status: str, message: str, metrics: dict[str, Any]) -> dict[str, Any]:
        """Record the run's end and return what ``start()`` answers."""
        ...


class Execution:
    """The work phase of one run: publish, apply, watch, and finish or roll back."""

    def __init__(self, action: RunOwner, plan: RunPlan, run_id: str, started: float) -> None:
        self.action = action
        self.store = action.store
        self.params = action.params
        self.opts = action.options
        self.plan = plan
        self.run_id = run_id
        self.started = started
        self.total = plan.total
        self.enumerated = 0
        self.token_prefix = f"L{run_id.replace('-', '')}:"
        self.tmp = Path(action.settings.home).resolve() / "tmp" / f"totask-{run_id}"
        self.applier = RunApplier(self.store, run_id)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.strategy_params = self.params.strategy_params().model_dump(mode="json", by_alias=True)
        self.workflow = self.store.workflow(plan.project.id)

    def metrics(self) -> dict[str, Any]:
        c = self.applier.counts
        return run_metrics(self.total, c.success, c.failed, self.started)

    def run(self) -> dict[str, Any]:
        s, pipe = self.action.settings, self.action.pipeline
        self.tmp.mkdir(parents=True, exist_ok=True)
        if self.opts.workers:
            log_path = Path(s.home).resolve() / "logs" / f"totask-{self.run_id}.log"
            self.workers.append(
                spawn_totask_worker(
                    s, pipe, self.params.method, self.opts.workers, log_path, self.tmp, self.opts.worker_loglevel
                )
            )
        reply = make_queue(results_queue(self.run_id))
        try:
            url = broker_url(s)
            with Connection(url, transport=broker_transport(url), transport_options=transport_options(s, pipe)) as conn:
                try:
                    with Consumer(conn, [reply], on_message=self.applier.on_message, accept=["json"], prefetch_count=4):
                        self._loop(conn)
                finally:
                    self._delete_queue(conn, reply.name)
        except (AnnoflowError, Exception) as e:  # anything after work started: roll back
            reason = str(e) if isinstance(e, AnnoflowError) else f"{type(e).__name__}: {e}"
            return self._rollback(reason)
        finally:
            self._cleanup()
        drop_backup(self.store, self.run_id)
        c = self.applier.counts
        self.total = self.enumerated  # tasks added or removed since the count
        self.action.lineage.changed = self.applier.changed
        message = f"annotated {c.success} of {self.total} task(s); {c.failed} failed"
        return self.action.finish("SUCCEEDED", message, self.metrics())

    # ------------------------------------------------------------ the loop
    def _loop(self, conn: Connection) -> None:
        app = make_celery_app(self.action.settings, self.action.pipeline)
        tasks = self.action.store.iter_tasks(self.plan.project.id, filters=self.params.task_filters)
        exhausted = False
        last_tick = last_health = time.monotonic()
        with app.producer_or_acquire() as publisher:
            while True:
                self._check_alive()
                while not exhausted and len(self.applier.in_flight) < self.opts.max_in_flight:
                    exhausted = not self._publish_next(app, publisher, tasks)
                if exhausted and not self.applier.in_flight:
                    break
                with contextlib.suppress(TimeoutError):  # nothing arrived: go round again
                    conn.drain_events(timeout=0.1)
                at = time.monotonic()
                if at - last_tick >= self.opts.metrics_every:
                    last_tick = at
                    self._tick()
                if self.params.method == "inference" and at - last_health >= self.opts.health_every:
                    last_health = at
                    self._check_pre_processor()
        self._tick()

    def _publish_next(self, app: Any, publisher: Any, tasks: Iterator[TaskRecord]) -> bool:
        """Claim and publish the next batch; False once the matching tasks are all enumerated."""
        page = list(islice(tasks, self.params.batch_size))
        if not page:
            return False
        self.enumerated += len(page)
        self.total = max(self.total, self.enumerated)
        claimed = claim_by_ids(self.store, [t.id for t in page], self.token_prefix, self.opts.lease_seconds)
        mine = {t.uuid for t in claimed}
        lineage = self.action.lineage
        lineage.datasets.update(t.dataset_id for t in claimed)
        held = [
            TaskFailure(t.uuid, t.data_title, "the task is held by another worker (live lease); run again later", None)
            for t in page
            if t.uuid not in mine
        ]
        self.applier.fail_unpublished(held)
        by_stage: dict[str, list[TaskRecord]] = {}
        for t in claimed:
            by_stage.setdefault(t.stage_uuid, []).append(t)
        specs = []
        for stage_uuid, group in by_stage.items():
            specs += build_specs(
                self.store,
                self.plan.project,
                self.workflow.stages[stage_uuid],
                group,
                include_labels=True,
                kind="totask.file" if self.params.method == "file" else "totask.inference",
                run_id=self.run_id,
                params=self.strategy_params,
            )
        if not specs:
            return True
        if self.params.method == "file":  # the annotation files the workers will read
            target = self.params.target_specification_name or ""
            for spec in specs:
                if (file := spec.files.get(target)) is not None:
                    lineage.files.add(file.url)
        snapshot_labels(self.store, self.run_id, specs)
        header = TotaskHeader(
            batch_id=uuid.uuid4().hex,
            run_id=self.run_id,
            project_id=self.plan.project.id,
            method=self.params.method,
            size=len(specs),
            reply_to=results_queue(self.run_id),
            published_at=datetime.now(UTC),
        )
        waiting = {str(s.uuid): (str(s.data_hash), s.data_title) for s in specs}
        self.applier.expect(header.batch_id, InFlight(waiting, time.monotonic()))
        app.send_task(
            TASK_NAMES[self.params.method],
            args=[header.model_dump(mode="json"), [s.model_dump_json() for s in specs]],
            queue=make_queue(QUEUES[self.params.method]),
            producer=publisher,
            retry=True,
        )
        return True

    def _tick(self) -> None:
        metrics = self.metrics()
        self.action.metrics = metrics
        self.store.update_run(self.run_id, metrics=metrics)
        done = metrics["success"] + metrics["failed"]
        log.info("[%s] Progress: %.1f%% (%d/%d)", self.params.name, metrics["progress"], done, metrics["total"])
        if self.action.on_progress is not None:
            self.action.on_progress(metrics)

    # ------------------------------------------------------------ watching
    def _check_alive(self) -> None:
        if self.action.stop_event.is_set():
            raise RunStopped(f"Run stopped: {self.action.stop_reason}")
        for proc in self.workers:
            if proc.poll() is not None:
                raise RunStopped(
                    f"the ToTask worker process exited with code {proc.returncode}; "
                    f"see {Path(self.action.settings.home).resolve() / 'logs' / f'totask-{self.run_id}.log'}"
                )
        waited = time.monotonic() - self.applier.counts.last_result
        if self.applier.in_flight and waited > self.opts.stall_timeout:
            raise RunStopped(
                f"no results for {waited:.0f} s with {len(self.applier.in_flight)} batch(es) out; "
                f"start workers for queue {QUEUES[self.params.method]} ('annoflow totask worker') "
                "or raise the stall timeout"
            )

    def _check_pre_processor(self) -> None:
        pre = self.action.registry.get(self.params.pre_processor or "")
        if not pre.health():
            raise RunStopped(
                f"Pre-processor not active: {self.params.pre_processor!r} stopped answering ready during the run; "
                "restart it and run again"
            )

    # ------------------------------------------------------------ endings
    def _rollback(self, reason: str) -> dict[str, Any]:
        log.error("[%s] critical error, rolling back: %s", self.params.name, reason)
        metrics = self.metrics()
        try:
            released = release_leases(self.store, self.token_prefix)
            restored = restore_labels(self.store, self.run_id)
        except (AnnoflowError, Exception) as e:  # the store itself may be what failed
            message = f"{reason}; ROLLBACK FAILED ({e}); the run's label backups are kept for a retry"
            try:
                return self.action.finish("FAILED", message, metrics)
            except Exception:
                raise TransientError(message) from e
        drop_backup(self.store, self.run_id)
        message = f"{reason}; rolled back: {restored} label row(s) restored, {released} task lease(s) released"
        return self.action.finish("FAILED", message, metrics)

    def _cleanup(self) -> None:
        # Nothing of this run is left to answer (done, or rolled back): stop at once.
        for proc in self.workers:
            stop_worker(proc, idle=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _delete_queue(conn: Connection, name: str) -> None:
        try:
            conn.default_channel.queue_delete(name)
        except Exception as e:  # the broker may be what failed; a leftover empty queue is harmless
            log.debug("could not delete results queue %s: %s", name, e)
