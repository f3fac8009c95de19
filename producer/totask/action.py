"""The ToTask action: pre-annotate the tasks that match a filter, through the queue pipeline.

``ToTaskAction(params=...).start()`` validates the parameters, makes the critical
checks (:mod:`producer.totask.checks`), records a run (kind ``totask``), then
enumerates the matching tasks lazily, claims them, snapshots their label rows,
and publishes batches of ``batch_size`` specs to ``totask.file`` or
``totask.inference``, keeping at most ``max_in_flight`` batches unanswered.
Workers run the strategy; this process applies their results
(:mod:`producer.totask.apply`) and keeps the run's metrics in the store, updated
at least once a second. Tasks stay in their stage.

A critical error after work started (stopped by the user, a worker process or the
pre-processor gone, no answers within ``stall_timeout``, the store failing) rolls
the run back: every label row it wrote is restored, its leases are released, its
scratch folder is removed, and the run is recorded FAILED with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from common.celery_app import PipelineSettings
from common.errors import AnnoflowError
from common.settings import Settings
from common.store import Store
from common.totask.params import ToTaskParams, validate_params
from common.totask.preprocessors import REGISTRY, PreProcessorRegistry
from common.versions import resolve_input
from producer.lineage import RunLineage, pre_processor_refs
from producer.totask.checks import check_run
from producer.totask.run import Execution, RunStopped, ToTaskOptions, run_metrics

__all__ = ["RunStopped", "ToTaskAction", "ToTaskOptions"]

log = logging.getLogger("annoflow.totask")

ProgressCallback = Callable[[dict[str, Any]], None]


class ToTaskAction:
    """One ToTask run; see the module docstring.

    Args:
        params: the run's parameters (validated here).
        store: the store (default: the one the settings name).
        settings: where store and broker are; ``ANNOFLOW_*`` when not given.
        pipeline: time limits and broker tuning.
        options: how the run executes.
        registry: pre-processors by name (the built-in registry by default).
        on_progress: called with the metrics at each update.

    Raises:
        InvalidParametersError: the parameters are invalid; every problem is listed.
    """

    def __init__(
        self,
        params: ToTaskParams | Mapping[str, Any],
        *,
        store: Store | None = None,
        settings: Settings | None = None,
        pipeline: PipelineSettings | None = None,
        options: ToTaskOptions | None = None,
        registry: PreProcessorRegistry | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.params = params if isinstance(params, ToTaskParams) else validate_params(dict(params))
        self.settings = settings or Settings()
        self.pipeline = pipeline or PipelineSettings()
        self.store = store or Store.open(self.settings.resolved_store_url)
        self.options = options or ToTaskOptions()
        self.registry = registry or REGISTRY
        self.on_progress = on_progress
        self.run_id: str | None = None
        self.metrics: dict[str, Any] = {}
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self.lineage = RunLineage()  # filled as the run goes, recorded by finish()

    def stop(self, reason: str = "stopped by the user") -> None:
        """Ask the run to stop; it rolls back what it did (callable from any thread or a signal handler)."""
        self.stop_reason = reason
        self.stop_event.set()

    # ------------------------------------------------------------------ start
    def start(self) -> dict[str, Any]:
        """Run to the end; return ``{"status": "SUCCEEDED"|"FAILED", "message", "metrics", "run_id"}``."""
        p = self.params
        record = p.model_dump(mode="json", by_alias=True)
        try:
            # P@N resolves to its project, so even a refused run is recorded under it.
            project_id: str | None = resolve_input(self.store, str(p.project)).project.id
        except AnnoflowError:
            project_id = None
        run = self.store.create_run(project_id, "totask", p.name, record)
        self.run_id = run.id
        if project_id is not None:
            self.lineage.add_project(project_id)
        started = time.monotonic()
        try:
            plan, agent = check_run(self.store, p, self.registry, self.options.ready_timeout)
        except AnnoflowError as e:
            return self.finish("FAILED", str(e), run_metrics(0, 0, 0, started))
        if p.method == "inference":  # check_run loaded it: get() answers the loaded instance
            self.lineage.inputs += pre_processor_refs(self.registry.get(p.pre_processor or ""))
        self.store.update_run(run.id, params={**record, "agent": agent}, metrics=run_metrics(plan.total, 0, 0, started))
        log.info("[%s] %s task(s) match; method %s", p.name, plan.total, p.method)
        return Execution(self, plan, run.id, started).run()

    def finish(self, status: str, message: str, metrics: dict[str, Any]) -> dict[str, Any]:
        """Record the run's end in the store and return the result dict ``start()`` answers."""
        assert self.run_id is not None
        self.metrics = metrics
        self.store.update_run(self.run_id, status=status, message=message, metrics=metrics)
        # A failed run was rolled back: it read its inputs but changed no task.
        self.lineage.record(self.store, self.run_id, outputs=status == "SUCCEEDED")
        if self.on_progress is not None:
            self.on_progress(metrics)
        return {"status": status, "message": message, "metrics": metrics, "run_id": self.run_id}
